"""Staff accounts (员工账号), the pure rules: roles, the password KDF and what a username or password may be.

Passwords are hashed with scrypt (n=2**14, r=8, p=1, 16-byte random salt, 32-byte key), stored as
``scrypt$n$r$p$salt$hash`` (salt and hash base64url) so the cost can be raised later without breaking old hashes.
Verification compares in constant time; callers run it in a worker thread (≈50 ms of CPU must not stall the loop).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Collection

from scrm.core.errors import InvalidInput

ROLE_ADMIN = "admin"
ROLE_MARKETER = "marketer"
ROLE_OPERATIONS = "operations"
ROLE_FINANCE = "finance"
ROLE_SALES = "sales"
# Roles a staff member may hold (an account has one or more), in display order.
ROLE_NAMES_ZH = {ROLE_ADMIN: "管理员", ROLE_SALES: "销售", ROLE_MARKETER: "营销", ROLE_OPERATIONS: "运营", ROLE_FINANCE: "财务"}

# 数据范围: whose customers (and their orders) a staff member sees in the console, the API and exports. "own" and
# "team" go through the account's WeCom member: own = customers that member follows; team = theirs and those of
# everyone who reports to them (直属上级 chain, synced from WeCom).
SCOPE_OWN, SCOPE_TEAM, SCOPE_ALL = "own", "team", "all"
DATA_SCOPES_ZH = {SCOPE_OWN: "仅本人的客户", SCOPE_TEAM: "本人及下属的客户", SCOPE_ALL: "全部客户"}


def default_scope(roles: Collection[str]) -> str:
    """A new account's data scope: a salesperson sees their own customers; every other role sees all."""
    return SCOPE_OWN if set(roles) == {ROLE_SALES} else SCOPE_ALL


def check_scope(scope: str) -> str:
    if scope not in DATA_SCOPES_ZH:
        names = "、".join(f"{k}（{v}）" for k, v in DATA_SCOPES_ZH.items())
        raise InvalidInput(f"数据范围需为 {names} 之一 (data_scope)", field="data_scope")
    return scope


SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, KEY_BYTES = 16, 32
MAX_SCRYPT_N = 2**20  # refuse stored parameters that would take seconds (a tampered row must not DoS sign-in)
MIN_PASSWORD, MAX_PASSWORD = 8, 256
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
RESERVED = frozenset({ROLE_ADMIN})  # the admin-token login's name


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=KEY_BYTES)


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` for a password, with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash (constant-time comparison); False for a malformed hash."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(x.isdecimal() for x in parts[1:4]):
        return False
    n, r, p = (int(x) for x in parts[1:4])
    if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= 32 and 0 < p <= 16):
        return False
    try:
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


@functools.cache
def dummy_hash() -> str:
    """Checked against when the username is unknown, so a miss costs as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def check_roles(roles: Collection[str]) -> tuple[str, ...]:
    """The roles in a stable order; InvalidInput when empty or unknown."""
    unknown = sorted(set(roles) - set(ROLE_NAMES_ZH))
    if unknown or not roles:
        names = "、".join(f"{k}（{v}）" for k, v in ROLE_NAMES_ZH.items())
        raise InvalidInput(f"角色需为 {names} 中的一个或多个 (roles: {', '.join(ROLE_NAMES_ZH)})", field="roles")
    return tuple(r for r in ROLE_NAMES_ZH if r in set(roles))


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"密码长度需为 {MIN_PASSWORD} 到 {MAX_PASSWORD} 个字符 (password length)", field="password")
    return password
