"""API key rows, behind one small class. What a key means (its format, hashing, roles,
constant-time checks) is ``service.auth``'s; this module only stores and finds rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Engine, select, update
from sqlmodel import Session

from index.models import MAX_ID, ApiKey, utcnow


class KeyStore:
    """Every read and write of ``api_key``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def prefix_taken(self, prefix: str) -> bool:
        with Session(self.engine) as session:
            return session.execute(select(ApiKey.id).where(ApiKey.prefix == prefix)).first() is not None

    def add(self, *, name: str, prefix: str, key_hash: str, role: str, principal: str, groups: Sequence[str]) -> ApiKey:
        """The new row, detached (readable after its session closed)."""
        row = ApiKey(name=name, prefix=prefix, key_hash=key_hash, role=role, principal=principal, groups=list(groups))
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            session.expunge(row)
        return row

    def find(self, prefix: str) -> ApiKey | None:
        """The key with this public prefix, revoked or not."""
        with Session(self.engine) as session:
            row = session.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalars().first()
            if row is not None:
                session.expunge(row)
            return row

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        with Session(self.engine) as session:
            query = select(ApiKey).order_by(ApiKey.id)
            if not include_revoked:
                query = query.where(ApiKey.revoked_at.is_(None))
            rows = list(session.execute(query).scalars())
            for row in rows:
                session.expunge(row)
            return rows

    def revoke(self, prefix_or_id: str) -> bool:
        """Revoke the active key with this prefix (or, for digits, this id). False when none."""
        with Session(self.engine) as session, session.begin():
            condition = ApiKey.prefix == prefix_or_id
            # Only ASCII digits make an id ("²" is a digit to str.isdigit), and no row has one past MAX_ID.
            if prefix_or_id.isascii() and prefix_or_id.isdigit() and int(prefix_or_id) <= MAX_ID:
                condition = condition | (ApiKey.id == int(prefix_or_id))
            result = session.execute(update(ApiKey).where(condition, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow()))
            return result.rowcount > 0

    def touch(self, key_id: int | None, when: datetime | None = None) -> None:
        """Record that the key was used at ``when`` (now by default)."""
        with Session(self.engine) as session, session.begin():
            session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when or utcnow()))
