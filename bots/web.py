"""Routes of the bots package."""

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    pass
