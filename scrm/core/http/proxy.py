"""Behind a reverse proxy: take the client's address and scheme from ``X-Forwarded-For`` / ``X-Forwarded-Proto``,
but only when the connection comes from a proxy listed in ``SCRM_TRUSTED_PROXIES`` (addresses or CIDRs, comma
separated; empty = trust nobody, the headers are ignored). Without it the login limiter would count every client
as the proxy and cookies would miss ``Secure`` behind TLS termination (docs/deploy.md)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple)


def parse_trusted(spec: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks. ValueError naming the bad entry."""
    nets = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"SCRM_TRUSTED_PROXIES: {part!r} is not an address or network") from None
    return tuple(nets)


def _trusted(addr: str, nets: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in n for n in nets)


def client_of(peer: str, forwarded_for: list[str], nets: tuple[Network, ...]) -> str:
    """The client address: walk ``X-Forwarded-For`` from the right while the hops are trusted proxies; the first
    untrusted (or malformed-stopped) hop is the client. A client cannot spoof past the proxies it does not control."""
    if not _trusted(peer, nets):
        return peer
    client = peer
    for hop in reversed([h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break
        client = hop
        if not _trusted(hop, nets):
            break
    return client


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    nets = request.app.get(TRUSTED_PROXIES, ())
    peer = request.remote or ""
    if not nets or not _trusted(peer, nets):
        return await handler(request)
    changes: dict[str, str] = {"remote": client_of(peer, request.headers.getall("X-Forwarded-For", []), nets)}
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        changes["scheme"] = proto
    return await handler(request.clone(**changes))  # type: ignore[arg-type]
