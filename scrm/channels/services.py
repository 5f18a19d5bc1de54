"""Channel codes (渠道活码) as the rest of the product sees them."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from scrm.channels.models import channel_codes


@dataclass(frozen=True)
class ChannelInfo:
    id: int
    name: str
    state: str
    kind: str
    welcome_text: str
    tag_ids: list[int]
    userids: list[str]


async def channel_for_state(conn: AsyncConnection, state: str) -> ChannelInfo | None:
    """The channel code whose contact way carries ``state`` (from add_external_contact), if any."""
    if not state:
        return None
    row = (await conn.execute(sa.select(channel_codes).where(channel_codes.c.state == state))).first()
    if row is None:
        return None
    return ChannelInfo(int(row.id), row.name, row.state, row.kind, row.welcome_text, [int(t) for t in row.tag_ids], list(row.userids))
