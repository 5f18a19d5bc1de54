"""The table of per-person API tokens (个人访问令牌)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import JSON, BigId, Model, UTCDateTime


class ApiToken(Model, table=True):
    """A staff member's API token: only its SHA-256 is kept; the token itself is shown once, when made."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId, sa_column_kwargs={"autoincrement": True})
    staff_id: int = Field(sa_type=BigId, index=True)  # the owner (scrm.crm.staff account id)
    name: str = Field(sa_type=sa.String(64))
    token_hash: str = Field(sa_type=sa.String(64), unique=True)
    shown_prefix: str = Field(sa_type=sa.String(16))  # "scrm_Ab3dE12" — tells tokens apart in lists
    scopes: list[str] = Field(sa_type=JSON)  # ["orders:read", "orders:write", …]
    created_at: dt.datetime = Field(sa_type=UTCDateTime())
    created_by: str = Field(sa_type=sa.String(64))  # who made it (the owner, or "admin")
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())
    last_used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime())


api_tokens: sa.Table = ApiToken.__table__
