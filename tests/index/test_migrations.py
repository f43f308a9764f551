"""Schema migrations stay true: a database upgraded from any earlier schema version and a fresh
one end identical to the live models, on SQLite and on PostgreSQL.

Migration 1 builds frozen release-1 tables (index/schema_v1.py), so a column added to a model
without a migration of its own makes ``test_fresh_database_matches_models`` fail here rather
than upgrades fail in the field.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from index import models  # noqa: F401  (registers the live tables)
from index.db import MIGRATIONS, SCHEMA_VERSION, migrate


def schema_of(engine) -> dict:
    """Tables, columns, keys and indexes as the database itself reports them."""
    inspector = inspect(engine)
    out = {}
    for table in sorted(inspector.get_table_names()):
        if table == "schema_version":
            continue
        columns = [(c["name"], str(c["type"]).upper(), bool(c["nullable"])) for c in inspector.get_columns(table)]
        indexes = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table))
        uniques = sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table))
        foreign = sorted((tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                         for f in inspector.get_foreign_keys(table))
        primary = tuple(inspector.get_pk_constraint(table)["constrained_columns"])
        out[table] = {"columns": sorted(columns), "indexes": indexes, "uniques": uniques, "foreign": foreign, "primary": primary}
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def engines(request, tmp_path):
    """A factory of empty databases of one kind."""
    if request.param == "sqlite":
        counter = iter(range(100))
        yield lambda: create_engine(f"sqlite:///{tmp_path / f'db{next(counter)}'}.db")
        return
    import uuid

    import psycopg

    base = request.getfixturevalue("postgres_url")
    host, port = base.split("@", 1)[1].split("/", 1)[0].split(":")
    made = []

    def make():
        name = "m_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host={host} port={port} user=gw dbname=postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        engine = create_engine(base.rsplit("/", 1)[0] + "/" + name)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


def test_fresh_database_matches_models(engines):
    migrated, reference = engines(), engines()
    assert migrate(migrated) == SCHEMA_VERSION
    SQLModel.metadata.create_all(reference)
    assert schema_of(migrated) == schema_of(reference)


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
def test_upgrade_from_every_earlier_version_matches_fresh(engines, start):
    old, fresh = engines(), engines()
    assert migrate(old, target=start) == start
    with old.begin() as conn:  # data written by the earlier release survives the upgrade
        conn.execute(text("INSERT INTO collection (name, created_at) VALUES ('kept', CURRENT_TIMESTAMP)"))
    assert migrate(old) == SCHEMA_VERSION
    migrate(fresh)
    assert schema_of(old) == schema_of(fresh)
    with old.connect() as conn:
        assert conn.execute(text("SELECT name FROM collection")).scalars().all() == ["kept"]


def test_migrations_are_numbered_in_order():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_a_newer_database_is_refused(engines):
    engine = engines()
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_version (version, description) VALUES (:v, 'from the future')"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(RuntimeError, match="newer than this Groundwork"):
        migrate(engine)
