"""Callback security for WeCom and the Official Account (docs/wecom.md §1): signatures, timestamps, AES.

Decryption uses wechatpy's PrpCrypto (AES-256-CBC, IV = key[:16], PKCS#7 to 32 bytes, receiveid check); the
envelope and the plaintext are parsed by :mod:`bots.gateway.xmlparse` with entity expansion off.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from urllib.parse import unquote

from bots.gateway.wechatpy_crypto import InvalidAppIdException, InvalidCorpIdException, MpPrpCrypto, WorkPrpCrypto


class CallbackRejected(Exception):
    """A callback that must not be processed; ``status`` is the HTTP answer (400/403)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def parse_query(query_string: str) -> dict[str, str]:
    """Parse a query string keeping a raw ``+`` as ``+`` (base64 echostr): WeCom percent-encodes, and aiohttp's
    ``request.query`` would turn a literal plus into a space and break the signature."""
    out: dict[str, str] = {}
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        out.setdefault(unquote(key), unquote(value))
    return out


def signature(*parts: str) -> str:
    """sha1 over the sorted parts joined (WeCom: token, timestamp, nonce, encrypt; OA plain: token, ts, nonce)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's choice


def check_signature(expected: str, *parts: str) -> None:
    if not expected or not hmac.compare_digest(signature(*parts), expected.lower()):
        raise CallbackRejected(403, "bad_signature", "signature does not match")


def check_timestamp(timestamp: str, now: int, max_skew: int) -> None:
    if not timestamp.isdecimal():
        raise CallbackRejected(400, "bad_request", "timestamp must be a number")
    if abs(now - int(timestamp)) > max_skew:
        raise CallbackRejected(403, "stale_timestamp", "timestamp outside the accepted window (replay?)")


def require(query: dict[str, str], *names: str) -> list[str]:
    missing = [n for n in names if not query.get(n)]
    if missing:
        raise CallbackRejected(400, "bad_request", "missing query parameters: " + ", ".join(missing))
    return [query[n] for n in names]


class CallbackCrypto:
    """AES key + token + receive id (corp id for WeCom, app id for the Official Account)."""

    def __init__(self, token: str, aes_key: str, receive_id: str, *, work: bool = True) -> None:
        self.token = token
        self.receive_id = receive_id
        try:
            self.key = base64.b64decode(aes_key + "=")
        except binascii.Error as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        if len(self.key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self._prp = WorkPrpCrypto if work else MpPrpCrypto

    def decrypt(self, encrypted: str) -> str:
        """Decrypt a signed ``Encrypt`` value; 403 when it was made for another corp/app, 400 when garbled."""
        try:
            return str(self._prp(self.key).decrypt(encrypted, self.receive_id))
        except (InvalidCorpIdException, InvalidAppIdException):
            raise CallbackRejected(403, "wrong_receiver", "message is for another corp id / app id") from None
        except (ValueError, binascii.Error, UnicodeDecodeError, IndexError, struct.error) as exc:
            raise CallbackRejected(400, "bad_ciphertext", f"cannot decrypt: {type(exc).__name__}") from None

    def encrypt(self, plaintext: str) -> str:
        return str(self._prp(self.key).encrypt(plaintext, self.receive_id).decode())
