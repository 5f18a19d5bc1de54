"""Temporary media (临时素材) for outbound image messages: ``media/upload?type=image`` on WeCom or the Official
Account, and a small cache so the same picture is not uploaded again while its media_id lives.

A media_id is valid for 3 days (docs/wecom.md §5b) and belongs to the account that uploaded it: the cache is keyed
by (API, SHA-256 of the bytes) and an id is reused until :data:`REUSE_MARGIN` before it expires, so a message
retried a little later still finds it valid. The cache is per process (a worker uploads a poster at most once per
validity); it reads the runtime's clock, the clock the sandbox emulator expires media by too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from bots.outbound.client import TokenApi
from scrm.core.runtime import ResourceKey, Runtime

MEDIA_TTL = dt.timedelta(days=3)  # how long WeCom / the Official Account keep temporary media
REUSE_MARGIN = dt.timedelta(hours=1)  # an id this close to expiring is not reused: upload afresh
CACHE_SIZE = 256  # posters are ≈60 KB; ids are short — this bounds the table, not memory


@dataclass(frozen=True)
class Uploaded:
    media_id: str
    expires_at: dt.datetime


class MediaCache:
    """media_id per (API, content hash), newest use last; the oldest entry goes when the cache is full."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], Uploaded] = OrderedDict()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.uploads = 0  # diagnostics, tests

    def get(self, key: tuple[str, str], now: dt.datetime) -> str | None:
        entry = self._entries.get(key)
        if entry is None or now >= entry.expires_at - REUSE_MARGIN:
            return None
        self._entries.move_to_end(key)
        return entry.media_id

    def put(self, key: tuple[str, str], entry: Uploaded) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, key: tuple[str, str], media_id: str) -> None:
        """Drop ``media_id`` (the API called it invalid) unless a newer upload replaced it already."""
        entry = self._entries.get(key)
        if entry is not None and entry.media_id == media_id:
            del self._entries[key]

    def lock(self, key: tuple[str, str]) -> asyncio.Lock:
        if len(self._locks) > self.size:  # forget idle locks; a held one is still referenced by its holder
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        return self._locks.setdefault(key, asyncio.Lock())


MEDIA_CACHE: ResourceKey[MediaCache] = ResourceKey("media_cache")


@dataclass(frozen=True)
class Image:
    """A picture to send: its bytes (PNG or JPG) and the filename the upload gives it."""

    content: bytes
    filename: str = "image.png"
    content_type: str = "image/png"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def cache_key(api: TokenApi, image: Image) -> tuple[str, str]:
    return (api.base_url + api.token_path, image.digest)


async def image_media_id(rt: Runtime, api: TokenApi, image: Image) -> str:
    """A live media_id of ``image`` on ``api``: the cached one, else uploaded now (``media/upload?type=image``).
    Concurrent callers with one picture upload it once. Raises what :meth:`TokenApi.call` raises."""
    cache = rt.get(MEDIA_CACHE)
    key = cache_key(api, image)
    async with cache.lock(key):
        known = cache.get(key, rt.clock.now())
        if known is not None:
            return known
        started = rt.clock.now()
        data = await api.call(
            "media/upload", params={"type": "image"}, files={"media": (image.filename, image.content, image.content_type)}
        )
        media_id = str(data["media_id"])
        cache.uploads += 1
        cache.put(key, Uploaded(media_id, started + MEDIA_TTL))
        return media_id


def forget_media_id(rt: Runtime, api: TokenApi, image: Image, media_id: str) -> None:
    """The API answered "invalid media_id" (expired early, or the emulator restarted): upload afresh next time."""
    rt.get(MEDIA_CACHE).forget(cache_key(api, image), media_id)
