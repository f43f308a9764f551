"""The audit trail's rows: batched inserts, filtered reads, pruning by age.

Each event is one ``audit_event`` row plus one ``audit_document`` row per document it names,
so "who saw document D" is an index lookup rather than a scan of JSON lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine, delete, insert, select
from sqlmodel import Session

from index.models import AuditDocument, AuditEvent, utcnow

PRUNE_BATCH = 5_000  # rows per delete transaction: pruning never holds the write lock for long


@dataclass
class AuditRecord:
    """One event as written (``id`` and ``occurred_at`` are filled in by the database row)."""

    key_prefix: str
    key_name: str
    principal: str
    route: str
    action: str
    status: int
    query: str | None = None
    query_sha256: str | None = None
    document_ids: list[int] = field(default_factory=list)
    chunk_ids: list[int] = field(default_factory=list)
    request_id: str | None = None
    occurred_at: datetime = field(default_factory=utcnow)
    id: int | None = None

    def to_json(self) -> dict:
        at = self.occurred_at if self.occurred_at.tzinfo else self.occurred_at.replace(tzinfo=timezone.utc)
        return {"id": self.id, "occurred_at": at.isoformat(), "key_prefix": self.key_prefix, "key_name": self.key_name,
                "principal": self.principal, "route": self.route, "action": self.action, "status": self.status,
                "query": self.query, "query_sha256": self.query_sha256, "document_ids": list(self.document_ids),
                "chunk_ids": list(self.chunk_ids), "request_id": self.request_id}


_COLUMNS = ("occurred_at", "key_prefix", "key_name", "principal", "route", "action", "query", "query_sha256", "document_ids",
            "chunk_ids", "status", "request_id")


_INSERT_EVENTS = insert(AuditEvent.__table__).returning(AuditEvent.__table__.c.id, sort_by_parameter_order=True)
_INSERT_LINKS = insert(AuditDocument.__table__)


class AuditStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def insert(self, records: Sequence[AuditRecord]) -> None:
        """All ``records`` in one transaction: committed together or not at all.

        Core statements on a plain connection, not an ORM session: this runs once per group
        commit while the server answers searches, and the session's unit-of-work machinery
        cost more CPU per row than the insert itself (measured with py-spy under bench/load.py).
        """
        if not records:
            return
        rows = [{name: getattr(record, name) for name in _COLUMNS} | {"occurred_at": _utc(record.occurred_at)}
                for record in records]
        with self.engine.begin() as conn:
            ids = conn.execute(_INSERT_EVENTS, rows).scalars().all()
            links = [{"event_id": event_id, "document_id": d}
                     for record, event_id in zip(records, ids) for d in sorted(set(record.document_ids))]
            if links:
                conn.execute(_INSERT_LINKS, links)
        for record, event_id in zip(records, ids):
            record.id = event_id

    def query(self, *, key: str | None = None, since: datetime | None = None, until: datetime | None = None,
              document_id: int | None = None, principal: str | None = None, action: str | None = None,
              before_id: int | None = None, limit: int = 100) -> list[AuditRecord]:
        """Newest first. ``key`` matches a key's prefix or name; ``before_id`` pages backwards."""
        statement = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if key:
            statement = statement.where((AuditEvent.key_prefix == key) | (AuditEvent.key_name == key))
        if since is not None:
            statement = statement.where(AuditEvent.occurred_at >= _utc(since))
        if until is not None:
            statement = statement.where(AuditEvent.occurred_at < _utc(until))
        if principal:
            statement = statement.where(AuditEvent.principal == principal)
        if action:
            statement = statement.where(AuditEvent.action == action)
        if before_id is not None:
            statement = statement.where(AuditEvent.id < before_id)
        if document_id is not None:
            statement = statement.where(AuditEvent.id.in_(select(AuditDocument.event_id).where(AuditDocument.document_id == document_id)))
        with Session(self.engine) as session:
            rows = session.execute(statement).scalars().all()
            return [AuditRecord(**{name: getattr(row, name) for name in _COLUMNS}, id=row.id) for row in rows]

    def prune(self, older_than: datetime) -> int:
        """Delete events (and their document links) from before ``older_than``; returns how many."""
        cutoff = _utc(older_than)
        removed = 0
        while True:
            with Session(self.engine) as session, session.begin():
                ids = session.execute(select(AuditEvent.id).where(AuditEvent.occurred_at < cutoff).order_by(AuditEvent.id)
                                      .limit(PRUNE_BATCH)).scalars().all()
                if not ids:
                    return removed
                session.execute(delete(AuditDocument).where(AuditDocument.event_id.in_(ids)))
                session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
            removed += len(ids)


def _utc(value: datetime) -> datetime:
    """Timestamps are aware and UTC (the models' convention); a naive one is taken as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
