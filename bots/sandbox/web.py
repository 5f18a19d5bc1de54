"""Mounts the sandbox (emulator + simulator + chat page) under /sandbox/."""

from aiohttp import web


def setup(app: web.Application) -> None:
    pass
