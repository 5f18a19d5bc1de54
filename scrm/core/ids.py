"""Identifiers that leave the system (idempotency keys, short codes)."""

from __future__ import annotations

import hashlib
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def short_id(length: int = 12) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def digest_key(*parts: object, length: int = 32) -> str:
    """A stable key from parts, safe for WeCom msgid ([0-9a-zA-Z_-], ≤ 32)."""
    raw = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:length]
