"""The table of field-permission overrides: a role's mode for a field, where the admin changed the default."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field

from scrm.core.db import Model, UTCDateTime


class FieldPermission(Model, table=True):
    """字段权限: one role's mode for one protected field (scrm.governance.fields.domain.FIELDS)."""

    __tablename__ = "field_permissions"

    role: str = Field(primary_key=True, sa_type=sa.String(16))
    field: str = Field(primary_key=True, sa_type=sa.String(32))
    mode: str = Field(sa_type=sa.String(16))
    updated_at: dt.datetime = Field(sa_type=UTCDateTime())
    updated_by: str = Field(sa_type=sa.String(64))


field_permissions: sa.Table = FieldPermission.__table__
