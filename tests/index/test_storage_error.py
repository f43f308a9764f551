"""Which database driver errors mean "the database cannot be used right now" (503 with
Retry-After over HTTP) and which are bugs (500)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DatabaseError, DisconnectionError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from index.db import storage_error
from index.errors import StorageCorrupt, StorageUnavailable


@pytest.mark.parametrize("error", [
    OperationalError("SELECT 1", {}, Exception('connection to server at "127.0.0.1", port 5432 failed: Connection refused')),
    OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")),
    InterfaceError("SELECT 1", {}, Exception("connection already closed")),
    DisconnectionError("the server closed the connection unexpectedly"),
    PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
])
def test_outages_are_storage_unavailable_and_transient(error) -> None:
    translated = storage_error(error)
    assert isinstance(translated, StorageUnavailable) and not isinstance(translated, StorageCorrupt)
    assert translated.transient and translated.code == "storage_unavailable"


def test_a_damaged_file_is_storage_corrupt_and_not_transient() -> None:
    translated = storage_error(DatabaseError("SELECT 1", {}, sqlite3.DatabaseError("database disk image is malformed")))
    assert isinstance(translated, StorageCorrupt) and not translated.transient and "Restore the database" in str(translated)


@pytest.mark.parametrize("error", [
    IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: document.source")),
    ProgrammingError("SELEC 1", {}, Exception("syntax error")),
    ValueError("not a database error"),
])
def test_bugs_are_not_outages(error) -> None:
    assert storage_error(error) is None


def test_an_error_already_in_the_vocabulary_passes_through() -> None:
    error = StorageUnavailable("disk full")
    assert storage_error(error) is error
