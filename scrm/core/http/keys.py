"""Typed application keys shared by every web module."""

from __future__ import annotations

from aiohttp import web

from config import Settings
from scrm.core.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
SETTINGS = web.AppKey("settings", Settings)
