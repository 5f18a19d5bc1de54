"""The app key of the sandbox's state — apart from the emulator, so that code which only asks "is the sandbox
mounted?" (the sidebar's sign-in shortcut) does not import the emulator into every production server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bots.sandbox.state import SandboxState

SANDBOX_STATE: web.AppKey[SandboxState] = web.AppKey("sandbox")
