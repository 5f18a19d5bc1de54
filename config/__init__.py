"""Settings and sample data files (tag rules, catalog, notice templates)."""

from config.settings import ConfigError, Secret, Settings, load_settings

__all__ = ["ConfigError", "Secret", "Settings", "load_settings"]
