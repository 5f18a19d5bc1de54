"""Signed tokens for cookies and OAuth states: HMAC-SHA256 over a JSON payload, one derived key per purpose, so a
token made for one purpose (a console session, a sidebar session, a CSRF token) never passes for another."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


# ---- signing ----------------------------------------------------------------------------------------------
def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """HMAC-SHA256 over a JSON payload, with a key derived from the session secret for one purpose."""

    def __init__(self, secret: str, purpose: str) -> None:
        if not secret:
            raise ValueError("session secret is empty")
        self._key = hmac.new(secret.encode(), b"scrm-console:" + purpose.encode(), hashlib.sha256).digest()

    def mac(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def sign(self, payload: dict[str, Any]) -> str:
        body = b64url(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{b64url(self.mac(body.encode('ascii')))}"

    def unsign(self, token: str) -> dict[str, Any] | None:
        """The payload if the signature is right, else None (never raises on garbage)."""
        body, dot, sig = token.partition(".")
        if not dot or len(token) > 4096:
            return None
        try:
            given = unb64url(sig)
            if not hmac.compare_digest(given, self.mac(body.encode("ascii"))):
                return None
            payload = json.loads(unb64url(body))
        except (ValueError, UnicodeError, binascii.Error):
            return None
        return payload if isinstance(payload, dict) else None
