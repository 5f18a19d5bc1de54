"""Settings: env over file, sandbox defaults, half-configured channels refused, secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, Secret, load_settings

FULL_WECOM = {
    "SCRM_WECOM_CORP_ID": "wwcorp",
    "SCRM_WECOM_AGENT_ID": "1000002",
    "SCRM_WECOM_SECRET": "real-secret-value",
    "SCRM_WECOM_TOKEN": "tok",
    "SCRM_WECOM_AES_KEY": "a" * 43,
    "SCRM_ADMIN_TOKEN": "admin-secret",
}


def test_defaults_are_the_embedded_sandbox() -> None:
    s = load_settings({}, config_file="/dev/null")
    assert s.is_sandbox and s.wecom_enabled and s.kf_enabled and s.mp_enabled
    assert s.port == 8080 and s.jobs_backend == "inprocess"
    assert s.database_url.startswith("sqlite+aiosqlite:///") and s.database_url.endswith("var/scrm.db")


def test_env_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "scrm.toml"
    cfg.write_text('port = 9000\nhost = "0.0.0.0"\nredis_url = "redis://x/1"\n', encoding="utf-8")
    s = load_settings({"SCRM_PORT": "9100"}, config_file=cfg)
    assert s.port == 9100 and s.host == "0.0.0.0" and s.jobs_backend == "arq"


def test_unknown_file_key_and_bad_values_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "scrm.toml"
    cfg.write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="prot"):
        load_settings({}, config_file=cfg)
    with pytest.raises(ConfigError, match="SCRM_PORT"):
        load_settings({"SCRM_PORT": "eighty"}, config_file="/dev/null")


def test_real_credentials_turn_sandbox_off() -> None:
    s = load_settings(FULL_WECOM, config_file="/dev/null")
    assert not s.is_sandbox and s.wecom_enabled and not s.mp_enabled
    assert s.wecom_api_base == "https://qyapi.weixin.qq.com/cgi-bin/"


@pytest.mark.parametrize("drop", ["SCRM_WECOM_AES_KEY", "SCRM_WECOM_SECRET", "SCRM_WECOM_AGENT_ID"])
def test_half_configured_wecom_is_refused_naming_what_is_missing(drop: str) -> None:
    env = {k: v for k, v in FULL_WECOM.items() if k != drop}
    with pytest.raises(ConfigError, match=drop):
        load_settings(env, config_file="/dev/null")


def test_half_configured_official_account_is_refused() -> None:
    with pytest.raises(ConfigError, match="SCRM_MP_SECRET"):
        load_settings({**FULL_WECOM, "SCRM_MP_APP_ID": "wx1", "SCRM_MP_TOKEN": "t"}, config_file="/dev/null")


def test_aes_key_length_and_admin_token_required_outside_sandbox() -> None:
    with pytest.raises(ConfigError, match="43"):
        load_settings({**FULL_WECOM, "SCRM_WECOM_AES_KEY": "short"}, config_file="/dev/null")
    env = {k: v for k, v in FULL_WECOM.items() if k != "SCRM_ADMIN_TOKEN"}
    with pytest.raises(ConfigError, match="SCRM_ADMIN_TOKEN"):
        load_settings(env, config_file="/dev/null")


def test_secrets_never_print() -> None:
    s = load_settings(FULL_WECOM, config_file="/dev/null")
    shown = repr(s) + str(s.public_dict())
    assert "real-secret-value" not in shown and "admin-secret" not in shown
    assert s.wecom_secret.get() == "real-secret-value"
    assert repr(Secret("x")) == "Secret('**********')"
