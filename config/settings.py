"""Typed settings, read once: environment variables ``SCRM_*`` over an optional TOML file.

The TOML file is ``SCRM_CONFIG_FILE`` if set, else ``config/scrm.toml`` when it exists. Keys in the file are the
setting names in lower case without the ``SCRM_`` prefix (``database_url = "..."``). Secrets are wrapped in
:class:`Secret` so they never print in logs, reprs or tracebacks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"  # settings, sample data and templates read by the features
DEFAULT_CONFIG_FILE = CONFIG_DIR / "scrm.toml"

WECOM_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin/"
MP_API_BASE = "https://api.weixin.qq.com/cgi-bin/"

# Sandbox credentials: used only when no real WeCom credentials are configured. They are not secret; the
# emulator and the product both know them so callbacks can be signed and encrypted exactly as WeCom does.
SANDBOX_CORP_ID = "wwsandbox0000000001"
SANDBOX_AGENT_ID = "1000002"
SANDBOX_SECRET = "sandbox-corp-secret"
SANDBOX_TOKEN = "sandboxToken2026"
SANDBOX_AES_KEY = "c2FuZGJveEVuY29kaW5nQUVTS2V5Rm9yU0NSTTIwMjY"
SANDBOX_KF_OPEN_KFID = "wkSandboxKf0000001"
SANDBOX_MP_APP_ID = "wxsandbox00000001"
SANDBOX_MP_SECRET = "sandbox-mp-secret"
SANDBOX_MP_TOKEN = "sandboxMpToken"
SANDBOX_MP_AES_KEY = "c2FuZGJveE1QRW5jb2RpbmdBRVNLZXlGb3JTQ1JNMjA"
SANDBOX_ADMIN_TOKEN = "sandbox-admin-token"
SANDBOX_APPROVAL_TEMPLATE = "sandbox-approval-template"  # the emulated 审批 app's one template (a single 多行文本 control)
SANDBOX_APPROVAL_CONTROL = "Textarea-sandbox-1"


class ConfigError(Exception):
    """Settings are missing or inconsistent; the message names what to fix."""


class Secret:
    """A string that never shows itself in repr/str/logs. Use :meth:`get` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    admin_token: Secret = field(default_factory=lambda: Secret(""))
    session_secret: Secret = field(default_factory=lambda: Secret(""))
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: Secret = field(default_factory=lambda: Secret(""))
    wecom_token: Secret = field(default_factory=lambda: Secret(""))
    wecom_aes_key: Secret = field(default_factory=lambda: Secret(""))
    wecom_api_base: str = ""
    kf_open_kfid: str = ""
    mp_app_id: str = ""
    mp_secret: Secret = field(default_factory=lambda: Secret(""))
    mp_token: Secret = field(default_factory=lambda: Secret(""))
    mp_aes_key: Secret = field(default_factory=lambda: Secret(""))
    mp_api_base: str = ""
    sandbox: bool | None = None
    # Operational knobs (not part of the §4 contract, but settable the same way).
    callback_max_skew: int = 300  # seconds a callback timestamp may differ from our clock
    max_body_bytes: int = 256 * 1024
    body_read_timeout: float = 10.0  # seconds a client has to send the whole request body (0 = no limit)
    trusted_proxies: str = ""  # reverse proxies whose X-Forwarded-For/-Proto are believed (addresses/CIDRs, comma separated)
    http_timeout: float = 10.0
    wecom_rate_limit_backoff: float = 60.0  # seconds to wait after 45009/45033 ("about a minute", docs/wecom.md §5)
    job_concurrency: int = 8
    job_max_tries: int = 5
    job_retry_base: float = 1.0  # seconds; retries back off base, 2×base, 4×base … (≤ 300 s)
    outbox_poll_seconds: float = 1.0
    log_level: str = "INFO"
    log_format: str = "auto"  # auto: readable text on a terminal, JSON lines otherwise; or json / text
    business_timezone: str = "Asia/Shanghai"
    kf_window_hours: int = 48
    kf_profile_refresh_hours: int = 24  # a 微信客服 customer's nickname/avatar is fetched again after this long
    kf_max_messages: int = 5
    msg_template_monthly_cap: int = 4
    public_url: str = ""  # how people reach this server; defaults to http://host:port
    ops_userids: str = ""  # comma-separated WeCom userids of operations staff (low-stock and order alerts)
    mp_notice_template_id: str = ""  # Official Account template (模板消息) used for order notices
    # The 审批 app template approvals are submitted to (its admin makes it with one 多行文本 control and gives both ids);
    # empty = approvals are decided in the console only.
    wecom_approval_template_id: str = ""
    wecom_approval_control_id: str = ""
    poster_font: str = ""  # a CJK font file (.ttf/.otf/.ttc) for referral posters; empty = the first Noto CJK / WenQuanYi found
    ship_cutoff_hour: int = 16  # orders confirmed before this hour (business time) ship that day — what chat promises
    audit_retention_days: int = 1095  # audit rows older than this are deleted nightly (0 = kept for ever)

    # ---- derived views -------------------------------------------------------------------------
    @property
    def is_sandbox(self) -> bool:
        return bool(self.sandbox)

    @property
    def wecom_enabled(self) -> bool:
        return bool(self.wecom_corp_id and self.wecom_secret and self.wecom_token and self.wecom_aes_key)

    @property
    def kf_enabled(self) -> bool:
        return self.wecom_enabled and bool(self.kf_open_kfid)

    @property
    def mp_enabled(self) -> bool:
        return bool(self.mp_app_id and self.mp_secret and self.mp_token)

    @property
    def ops_userid_list(self) -> list[str]:
        return [u.strip() for u in self.ops_userids.split(",") if u.strip()]

    @property
    def jobs_backend(self) -> str:
        return "arq" if self.redis_url else "inprocess"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """Settings as shown at start and in diagnostics: secrets masked."""
        return {f.name: repr(v) if isinstance(v, Secret) else v for f in fields(self) for v in [getattr(self, f.name)]}


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, typ: Any, raw: Any) -> Any:
    try:
        if typ is Secret:
            return Secret(str(raw))
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ in (bool, bool | None):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False if typ is bool or text else None
            raise ValueError(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"SCRM_{name.upper()}: cannot read {raw!r} as {getattr(typ, '__name__', typ)}") from None


def load_settings(env: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    """Read settings once and validate them. Raises :class:`ConfigError` naming what is missing or wrong."""
    env = os.environ if env is None else env
    path = Path(config_file or env.get("SCRM_CONFIG_FILE") or DEFAULT_CONFIG_FILE)
    from_file: dict[str, Any] = {}
    if config_file or env.get("SCRM_CONFIG_FILE") or path.exists():
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        key = f"SCRM_{f.name.upper()}"
        if key in env:
            values[f.name] = _coerce(f.name, hints[f.name], env[key])
        elif f.name in from_file:
            values[f.name] = _coerce(f.name, hints[f.name], from_file[f.name])
    unknown = set(from_file) - {f.name for f in fields(Settings)}
    if unknown:
        raise ConfigError(f"config file {path}: unknown settings {', '.join(sorted(unknown))}")
    return finalize(Settings(**values))


_WECOM_GROUP = ("wecom_corp_id", "wecom_agent_id", "wecom_secret", "wecom_token", "wecom_aes_key")
_MP_GROUP = ("mp_app_id", "mp_secret", "mp_token")


def _missing(settings: Settings, names: tuple[str, ...]) -> list[str]:
    return [f"SCRM_{n.upper()}" for n in names if not getattr(settings, n)]


def finalize(settings: Settings) -> Settings:
    """Apply defaults that depend on other settings, then refuse half-configured channels."""
    wecom_set = [n for n in _WECOM_GROUP if getattr(settings, n)]
    sandbox = settings.sandbox if settings.sandbox is not None else not wecom_set
    changes: dict[str, Any] = {"sandbox": sandbox}
    if not settings.database_url:
        changes["database_url"] = f"sqlite+aiosqlite:///{PROJECT_ROOT / 'var' / 'scrm.db'}"
    if sandbox:
        if not wecom_set:
            changes.update(
                wecom_corp_id=SANDBOX_CORP_ID,
                wecom_agent_id=SANDBOX_AGENT_ID,
                wecom_secret=Secret(SANDBOX_SECRET),
                wecom_token=Secret(SANDBOX_TOKEN),
                wecom_aes_key=Secret(SANDBOX_AES_KEY),
                kf_open_kfid=settings.kf_open_kfid or SANDBOX_KF_OPEN_KFID,
            )
        if not any(getattr(settings, n) for n in (*_MP_GROUP, "mp_aes_key")):
            changes.update(
                mp_app_id=SANDBOX_MP_APP_ID,
                mp_secret=Secret(SANDBOX_MP_SECRET),
                mp_token=Secret(SANDBOX_MP_TOKEN),
                mp_aes_key=Secret(SANDBOX_MP_AES_KEY),
            )
        if not settings.admin_token:
            changes["admin_token"] = Secret(SANDBOX_ADMIN_TOKEN)
        if not settings.ops_userids:
            changes["ops_userids"] = "ops01"
        if not settings.mp_notice_template_id:
            changes["mp_notice_template_id"] = "sandbox-order-notice"
        if not settings.wecom_approval_template_id:
            changes.update(wecom_approval_template_id=SANDBOX_APPROVAL_TEMPLATE, wecom_approval_control_id=SANDBOX_APPROVAL_CONTROL)
    else:
        changes.setdefault("wecom_api_base", settings.wecom_api_base or WECOM_API_BASE)
        changes.setdefault("mp_api_base", settings.mp_api_base or MP_API_BASE)
    settings = settings.replace(**changes)
    if not settings.session_secret:
        # Derive a stable per-install secret from the admin token so sessions survive restarts.

        seed = (settings.admin_token.get() or settings.wecom_secret.get() or "scrm").encode()
        settings = settings.replace(session_secret=Secret(hashlib.sha256(b"session:" + seed).hexdigest()))
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    problems: list[str] = []
    wecom_set = [n for n in _WECOM_GROUP if getattr(settings, n)]
    if wecom_set and len(wecom_set) < len(_WECOM_GROUP):
        problems.append("WeCom channel is half-configured; missing " + ", ".join(_missing(settings, _WECOM_GROUP)))
    mp_set = [n for n in (*_MP_GROUP, "mp_aes_key") if getattr(settings, n)]
    if mp_set and any(not getattr(settings, n) for n in _MP_GROUP):
        problems.append("Official Account channel is half-configured; missing " + ", ".join(_missing(settings, _MP_GROUP)))
    if settings.kf_open_kfid and not settings.wecom_enabled:
        problems.append("SCRM_KF_OPEN_KFID is set but the WeCom channel is not configured")
    for name in ("wecom_aes_key", "mp_aes_key"):
        key = getattr(settings, name).get()
        if key and len(key) != 43:
            problems.append(f"SCRM_{name.upper()} must be exactly 43 characters (got {len(key)})")
    for name in ("wecom_token", "mp_token"):
        if len(getattr(settings, name).get()) > 32:
            problems.append(f"SCRM_{name.upper()} must be at most 32 characters")
    if not settings.is_sandbox and not settings.admin_token:
        problems.append("SCRM_ADMIN_TOKEN is required outside sandbox mode (the API and console need it)")
    if not settings.database_url.startswith(("sqlite", "postgresql")):
        problems.append("SCRM_DATABASE_URL must be sqlite+aiosqlite:///... or postgresql+asyncpg://...")
    if not 0 < settings.port < 65536:
        problems.append("SCRM_PORT must be between 1 and 65535")
    if settings.log_format not in ("auto", "json", "text"):
        problems.append("SCRM_LOG_FORMAT must be auto, json or text")
    if problems:
        raise ConfigError("; ".join(problems))
