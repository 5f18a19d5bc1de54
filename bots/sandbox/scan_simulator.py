"""A customer scans a code in the sandbox — a 联系我 code (channel code, personal referral code) or a 加入群聊 code —
found by its link (``qr_code``, what a poster's QR code carries) or its config_id. The emulator's state changes
first, then the product hears the callback WeCom would send: change_external_contact add_external_contact with the
way's State, or change_external_chat add_member (see :mod:`bots.sandbox.group_simulator`)."""

from __future__ import annotations

from typing import Any

from bots.sandbox.group_simulator import customer_joins_group, deliver_event
from bots.sandbox.simulator import change_external_contact
from bots.sandbox.state import SandboxState


def find_code(state: SandboxState, code: str) -> tuple[str, str] | None:
    """("contact" | "join", config_id) of the way whose config_id or qr_code link is ``code``; None if none is."""
    for kind, ways in (("contact", state.contact_ways), ("join", state.join_ways)):
        for way in ways.values():
            if code in (way.config_id, way.qr_code):
                return kind, way.config_id
    return None


async def customer_scans(state: SandboxState, code: str, external_userid: str, name: str, **fields: Any) -> dict[str, Any]:
    """``external_userid`` scans ``code`` (a way's qr_code link or config_id). Returns the callback's fields plus
    ``kind``. Raises KeyError for a code the sandbox did not make, LookupError / ValueError as a group join does."""
    found = find_code(state, code)
    if found is None:
        raise KeyError("no contact way or join way of this sandbox has this link")
    kind, config_id = found
    if kind == "join":
        return {"kind": kind, **await customer_joins_group(state, config_id, external_userid, name, **fields)}
    added = state.customer_added_via(config_id, external_userid, name, **fields)
    xml = change_external_contact(
        "add_external_contact", added["userid"], external_userid, state=added["state"], welcome_code=added["welcome_code"],
        create_time=state.ts(), corp_id=state.corp_id,
    )  # fmt: skip
    await deliver_event(state, xml)
    return {"kind": kind, **added}
