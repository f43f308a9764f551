"""Idempotency records, behind one small class: the response a request with an
``Idempotency-Key`` got, so that a retry of it gets the same answer instead of a second upload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from index.models import IdempotencyRecord


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    response: dict[str, Any]


class IdempotencyStore:
    """Every read and write of ``idempotency_record``."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get(self, key: str) -> StoredResponse | None:
        with Session(self.engine) as session:
            record = session.get(IdempotencyRecord, key)
            if record is None:
                return None
            return StoredResponse(record.status_code, dict(record.response or {}))

    def remember(self, key: str, status_code: int, response: dict[str, Any]) -> bool:
        """Store the response; False when a record for ``key`` exists already (a concurrent
        duplicate finished first), which is then left as it is."""
        try:
            with Session(self.engine) as session, session.begin():
                session.add(IdempotencyRecord(key=key, status_code=status_code, response=response))
        except IntegrityError:
            return False
        return True
