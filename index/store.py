"""Transactional operations on the source-of-truth tables.

Every write that changes what is searchable appends to ``change_log`` in the same
transaction, so derived indexes can always catch up and a crash never leaves them ahead of,
or silently behind, the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import Engine, Text, bindparam, delete, func, insert, select, type_coerce, update
from sqlmodel import Session

from index.boilerplate import text_fingerprint
from index.db import IntegrityMonitor
from index.idempotency_store import IdempotencyStore
from index.job_store import JobStore
from index.key_store import KeyStore
from index.models import (
    ChangeLog,
    ChangeOp,
    Chunk,
    Collection,
    Document,
    DocumentStatus,
    utcnow,
)

DEFAULT_COLLECTION = "default"


@dataclass
class NewChunk:
    ordinal: int
    text: str
    token_count: int
    start: int
    end: int
    pages: list[int]
    heading_path: list[str]
    kind: str = "text"
    context: str = ""


@dataclass
class DocumentWrite:
    """Everything needed to (re)place one document atomically."""

    collection: str
    source: str
    sha256: str | None
    title: str | None
    mime_type: str | None
    text: str
    size_bytes: int
    groups: list[str]
    metadata: dict[str, Any]
    chunks: list[NewChunk]
    embeddings: np.ndarray  # float32 (len(chunks), dim)
    embedding_fingerprint: str
    context: str = ""  # the document's context line (ingest.doc_context)
    ingest_version: int | None = None  # what read the file (ingest.version); None: not the ingest


@dataclass
class ChunkRecord:
    """A chunk joined with the document attributes retrieval and citations need."""

    id: int
    document_id: int
    ordinal: int
    text: str
    context: str
    pages: list[int]
    heading_path: list[str]
    start: int
    end: int
    source: str
    title: str | None
    mime_type: str | None
    collection: str
    groups: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None  # only when asked for: retrieval's near-duplicate check
    document_context: str | None = None  # the document's context line (``context`` is the chunk's own)
    kind: str = "text"  # "table" when the chunk holds (a piece of) a table


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int | None = None) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim or 0), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32)
    width = dim or len(blobs[0]) // 4
    return matrix.reshape(-1, width)


HEADING_SEPARATOR = " › "


def document_line(title: str | None, document_context: str | None) -> str:
    """The line naming a chunk's document: its context line (which starts with what names the
    document), else its title."""
    return (document_context or title or "").strip()


def chunk_location(title: str | None, document_context: str | None, heading_path: Sequence[str]) -> str:
    """Where a chunk sits: "document › heading › subheading" (the document named by its
    context line, else its title)."""
    return HEADING_SEPARATOR.join(p for p in (document_line(title, document_context), *heading_path) if p)


def keyword_text(title: str | None, heading_path: Sequence[str], context: str, text: str, document_context: str | None = None) -> str:
    """What the keyword index sees for a chunk: its location, its own context (a split table's
    caption and header row) and its text, one line each (the same as the embedder, uncut)."""
    return "\n".join(p for p in (chunk_location(title, document_context, heading_path), context, text) if p)


def _index_rows_select():
    """What ``iter_chunks_for_index`` and ``index_rows`` read, before their own filter."""
    return (select(Chunk.id, Chunk.document_id, Document.title, Chunk.heading_path, Chunk.context, Chunk.text, Chunk.embedding,
                   Document.context, Document.groups)
            .join(Document, Document.id == Chunk.document_id))


def _index_row(r) -> tuple:
    """(chunk_id, document_id, keyword text, embedding blob, document groups) from a row of
    ``_index_rows_select``."""
    return (r[0], r[1], keyword_text(r[2], r[3] or [], r[4], r[5], r[7]), r[6], tuple(r[8] or ()))


class Store:
    """Documents, chunks, collections and the change log; the other tables each have their own
    small data-access class, reached from here so that whoever holds the store holds them all."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.integrity = IntegrityMonitor(engine)
        self.jobs = JobStore(engine)
        self.keys = KeyStore(engine)
        self.idempotency = IdempotencyStore(engine)

    # --- collections ----------------------------------------------------------------------
    def collection_id(self, name: str, *, create: bool = True) -> int | None:
        with Session(self.engine) as session:
            found = session.execute(select(Collection.id).where(Collection.name == name)).scalar_one_or_none()
            if found is not None:
                return found
            if not create:
                return None
            row = Collection(name=name)
            session.add(row)
            try:
                session.commit()
            except Exception:  # a concurrent creator won the race
                session.rollback()
                return session.execute(select(Collection.id).where(Collection.name == name)).scalar_one()
            return row.id

    def collections(self) -> dict[int, str]:
        with Session(self.engine) as session:
            return {cid: name for cid, name in session.execute(select(Collection.id, Collection.name)).all()}

    # --- documents --------------------------------------------------------------------------
    def find_document(self, collection: str, source: str) -> Document | None:
        cid = self.collection_id(collection, create=False)
        if cid is None:
            return None
        with Session(self.engine) as session:
            return session.execute(
                select(Document).where(Document.collection_id == cid, Document.source == source)
            ).scalars().first()

    def get_document(self, document_id: int) -> Document | None:
        with Session(self.engine) as session:
            return session.get(Document, document_id)

    def put_document(self, write: DocumentWrite) -> tuple[int, str]:
        """Insert or replace a document and its chunks in one transaction.

        Returns (document_id, "added" | "updated").
        """
        if len(write.chunks) != len(write.embeddings):
            raise ValueError("one embedding per chunk")
        cid = self.collection_id(write.collection)
        with Session(self.engine) as session, session.begin():
            return self._put_in_session(session, write, cid, utcnow())

    def put_documents(self, writes: Sequence[DocumentWrite]) -> list[tuple[int, str]]:
        """``put_document`` for many documents in one transaction: the bulk-load path for large
        migrations. Core statements over the whole batch (one multi-row insert for documents,
        one for chunks, one insert-select for the change log) instead of the ORM per document,
        whose per-row work was most of a write's cost (``bench/scale.py``). The guarantee is the
        same: a crash keeps all of a batch or none of it, change log included."""
        if not writes:
            return []
        for write in writes:
            if len(write.chunks) != len(write.embeddings):
                raise ValueError("one embedding per chunk")
        keys = [(write.collection, write.source) for write in writes]
        if len(set(keys)) != len(keys):
            raise ValueError("a document appears twice in one batch")
        collections = {name: self.collection_id(name) for name in {w.collection for w in writes}}
        now = utcnow()
        table = Document.__table__
        with self.engine.begin() as connection:
            existing: dict[tuple[int, str], int] = {}
            for cid in set(collections.values()):
                sources = [w.source for w in writes if collections[w.collection] == cid]
                for start in range(0, len(sources), 500):
                    for doc_id, source in connection.execute(
                        select(Document.id, Document.source).where(Document.collection_id == cid, Document.source.in_(sources[start : start + 500]))
                    ).all():
                        existing[(cid, source)] = doc_id
            values = [self._document_values(write, collections[write.collection], now) for write in writes]
            ids: list[int] = []
            outcomes: list[str] = []
            fresh = [(i, v) for i, v in enumerate(values) if (v["collection_id"], v["source"]) not in existing]
            for i, v in enumerate(values):
                doc_id = existing.get((v["collection_id"], v["source"]))
                if doc_id is not None:
                    self._delete_chunks_core(connection, doc_id, now)
                    connection.execute(update(table).where(table.c.id == doc_id).values(**{k: x for k, x in v.items() if k != "created_at"}))
                ids.append(doc_id)
                outcomes.append("added" if doc_id is None else "updated")
            if fresh:
                returned = connection.execute(
                    insert(table).returning(table.c.id, sort_by_parameter_order=True), [v for _, v in fresh]
                ).scalars().all()
                for (i, _), doc_id in zip(fresh, returned):
                    ids[i] = int(doc_id)
            rows = [
                {"document_id": ids[i], "ordinal": c.ordinal, "text": c.text, "context": c.context, "token_count": c.token_count,
                 "start": c.start, "end": c.end, "pages": list(c.pages), "heading_path": list(c.heading_path), "kind": c.kind,
                 "fingerprint": text_fingerprint(c.text), "embedding": encode_vector(write.embeddings[j])}
                for i, write in enumerate(writes) for j, c in enumerate(write.chunks)
            ]
            if rows:
                connection.execute(insert(Chunk.__table__), rows)
                for start in range(0, len(ids), 500):
                    part = ids[start : start + 500]
                    added = (select(type_coerce(ChangeOp.add, Text), Chunk.id, Chunk.document_id, type_coerce(now, ChangeLog.__table__.c.created_at.type))
                             .where(Chunk.document_id.in_(part)).order_by(Chunk.id))
                    connection.execute(insert(ChangeLog.__table__).from_select(["op", "chunk_id", "document_id", "created_at"], added))
            connection.execute(insert(ChangeLog.__table__), [{"op": ChangeOp.document, "document_id": doc_id, "created_at": now} for doc_id in ids])
        return list(zip(ids, outcomes))

    @staticmethod
    def _document_values(write: DocumentWrite, cid: int | None, now: datetime) -> dict[str, Any]:
        return {"collection_id": cid, "source": write.source, "sha256": write.sha256, "title": write.title, "context": write.context,
                "mime_type": write.mime_type, "metadata": dict(write.metadata), "groups": sorted(set(write.groups)),
                "status": DocumentStatus.indexed, "failure_reason": None, "failure_detail": None, "size_bytes": write.size_bytes,
                "chunk_count": len(write.chunks), "text": write.text, "embedding_fingerprint": write.embedding_fingerprint,
                "ingest_version": write.ingest_version, "created_at": now, "updated_at": now}

    @staticmethod
    def _delete_chunks_core(connection, document_id: int, now: datetime) -> None:
        ids = connection.execute(select(Chunk.id).where(Chunk.document_id == document_id)).scalars().all()
        if ids:
            connection.execute(insert(ChangeLog.__table__), [{"op": ChangeOp.delete, "chunk_id": i, "document_id": document_id, "created_at": now} for i in ids])
            connection.execute(delete(Chunk.__table__).where(Chunk.document_id == document_id))

    def _put_in_session(self, session: Session, write: DocumentWrite, cid: int | None, now: datetime) -> tuple[int, str]:
        existing = session.execute(
            select(Document).where(Document.collection_id == cid, Document.source == write.source).with_for_update()
        ).scalars().first()
        if existing is None:
            doc = Document(collection_id=cid, source=write.source, created_at=now)
            session.add(doc)
            outcome = "added"
        else:
            doc = existing
            self._delete_chunks(session, doc.id)
            outcome = "updated"
        doc.sha256 = write.sha256
        doc.title = write.title
        doc.context = write.context
        doc.mime_type = write.mime_type
        doc.text = write.text
        doc.size_bytes = write.size_bytes
        doc.groups = sorted(set(write.groups))
        doc.doc_metadata = dict(write.metadata)
        doc.status = DocumentStatus.indexed
        doc.failure_reason = None
        doc.failure_detail = None
        doc.chunk_count = len(write.chunks)
        doc.embedding_fingerprint = write.embedding_fingerprint
        doc.ingest_version = write.ingest_version
        doc.updated_at = now
        session.flush()
        rows = [
            {
                "document_id": doc.id,
                "ordinal": c.ordinal,
                "text": c.text,
                "context": c.context,
                "token_count": c.token_count,
                "start": c.start,
                "end": c.end,
                "pages": list(c.pages),
                "heading_path": list(c.heading_path),
                "kind": c.kind,
                "fingerprint": text_fingerprint(c.text),
                "embedding": encode_vector(write.embeddings[i]),
            }
            for i, c in enumerate(write.chunks)
        ]
        if rows:
            session.execute(insert(Chunk), rows)
            ids = session.execute(
                select(Chunk.id).where(Chunk.document_id == doc.id).order_by(Chunk.ordinal)
            ).scalars().all()
            session.execute(
                insert(ChangeLog),
                [{"op": ChangeOp.add, "chunk_id": chunk_id, "document_id": doc.id, "created_at": now} for chunk_id in ids],
            )
        session.execute(insert(ChangeLog), [{"op": ChangeOp.document, "document_id": doc.id, "created_at": now}])
        return doc.id, outcome

    def put_failed_document(
        self, collection: str, source: str, *, sha256: str | None, size_bytes: int, reason: str, detail: str,
        groups: Sequence[str] = (), metadata: dict | None = None, ingest_version: int | None = None,
    ) -> tuple[int, str]:
        """Record a file that could not be ingested. A previously indexed version is withdrawn:
        the source changed, so its old text no longer reflects it."""
        cid = self.collection_id(collection)
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            doc = session.execute(
                select(Document).where(Document.collection_id == cid, Document.source == source).with_for_update()
            ).scalars().first()
            outcome = "failed"
            if doc is None:
                doc = Document(collection_id=cid, source=source, created_at=now)
                session.add(doc)
            else:
                self._delete_chunks(session, doc.id)
            doc.sha256 = sha256
            doc.size_bytes = size_bytes
            doc.status = DocumentStatus.failed
            doc.context = None  # derived again when the file next parses
            doc.failure_reason = reason
            doc.failure_detail = detail[:2000]
            doc.ingest_version = ingest_version
            doc.chunk_count = 0
            doc.text = ""
            doc.groups = sorted(set(groups))
            doc.doc_metadata = dict(metadata or {})
            doc.updated_at = now
            session.flush()
            session.execute(insert(ChangeLog), [{"op": ChangeOp.document, "document_id": doc.id, "created_at": now}])
            return doc.id, outcome

    def update_document(self, document_id: int, *, metadata: dict | None = None, groups: Sequence[str] | None = None, title: str | None = None) -> Document | None:
        """Change access groups or metadata without touching chunks or embeddings."""
        with Session(self.engine) as session, session.begin():
            doc = session.get(Document, document_id, with_for_update=True)
            if doc is None:
                return None
            if metadata is not None:
                doc.doc_metadata = dict(metadata)
            if groups is not None:
                doc.groups = sorted(set(groups))
            if title is not None:
                doc.title = title
            doc.updated_at = utcnow()
            session.execute(insert(ChangeLog), [{"op": ChangeOp.document, "document_id": doc.id, "created_at": doc.updated_at}])
            session.flush()
            session.expunge(doc)
            return doc

    def delete_document(self, document_id: int) -> bool:
        with Session(self.engine) as session, session.begin():
            doc = session.get(Document, document_id, with_for_update=True)
            if doc is None:
                return False
            self._delete_chunks(session, document_id)
            session.delete(doc)
            session.execute(insert(ChangeLog), [{"op": ChangeOp.document, "document_id": document_id, "created_at": utcnow()}])
            return True

    def _delete_chunks(self, session: Session, document_id: int) -> None:
        ids = session.execute(select(Chunk.id).where(Chunk.document_id == document_id)).scalars().all()
        if not ids:
            return
        now = utcnow()
        session.execute(
            insert(ChangeLog),
            [{"op": ChangeOp.delete, "chunk_id": chunk_id, "document_id": document_id, "created_at": now} for chunk_id in ids],
        )
        session.execute(delete(Chunk).where(Chunk.document_id == document_id))

    def documents_in(self, collection: str) -> list[tuple[int, str]]:
        cid = self.collection_id(collection, create=False)
        if cid is None:
            return []
        with Session(self.engine) as session:
            return [tuple(r) for r in session.execute(select(Document.id, Document.source).where(Document.collection_id == cid)).all()]

    def list_documents(
        self, *, collection: str | None = None, status: str | None = None, source_prefix: str | None = None,
        after_id: int = 0, limit: int = 100, visible_groups: set[str] | None = None,
    ) -> list[Document]:
        with Session(self.engine) as session:
            query = select(Document).where(Document.id > after_id)
            if collection is not None:
                cid = self.collection_id(collection, create=False)
                if cid is None:
                    return []
                query = query.where(Document.collection_id == cid)
            if status:
                query = query.where(Document.status == status)
            if source_prefix:
                query = query.where(Document.source.startswith(source_prefix, autoescape=True))
            query = query.order_by(Document.id)
            out: list[Document] = []
            # Access filtering is on the JSON groups column, evaluated here so it is identical
            # on SQLite and Postgres; page until the limit is filled.
            for doc in session.execute(query.execution_options(yield_per=500)).scalars():
                if visible_groups is not None and doc.groups and not (set(doc.groups) & visible_groups):
                    continue
                session.expunge(doc)
                out.append(doc)
                if len(out) >= limit:
                    break
            return out

    def sources_with_sha256(self, sha256: str) -> list[str]:
        """The sources of every document whose file has this digest (any collection)."""
        with Session(self.engine) as session:
            return list(session.execute(select(Document.source).where(Document.sha256 == sha256)).scalars().all())

    def document_attributes(self, document_ids: Sequence[int] | None = None) -> list[tuple]:
        """(id, collection_id, groups, source, mime_type, created_at, updated_at, metadata, status, title, context) for
        every document (or those of ``document_ids`` that exist): what the retrieval filter cache holds in memory."""
        query = select(
            Document.id, Document.collection_id, Document.groups, Document.source, Document.mime_type,
            Document.created_at, Document.updated_at, Document.doc_metadata, Document.status, Document.title,
            Document.context,
        )
        if self.engine.dialect.name == "sqlite":
            return self._document_attributes_sqlite(document_ids)
        with Session(self.engine) as session:
            if document_ids is None:
                return [tuple(r) for r in session.execute(query).all()]
            ids = [int(i) for i in document_ids]
            return [tuple(r) for start in range(0, len(ids), 900)
                    for r in session.execute(query.where(Document.id.in_(ids[start : start + 900]))).all()]

    def _document_attributes_sqlite(self, document_ids: Sequence[int] | None) -> list[tuple]:
        """``document_attributes`` on SQLite, decoded here: SQLAlchemy's per-value JSON and
        date processing was most of a catalog load at 200k documents (``bench/scale.py``)."""
        sql = ('SELECT id, collection_id, groups, source, mime_type, created_at, updated_at, metadata, status, title, context '
               'FROM document')
        connection = self.engine.raw_connection()
        try:
            if document_ids is None:
                rows = connection.driver_connection.execute(sql).fetchall()
            else:
                ids = [int(i) for i in document_ids]
                rows = []
                for start in range(0, len(ids), 900):
                    part = ids[start : start + 900]
                    rows.extend(connection.driver_connection.execute(f"{sql} WHERE id IN ({','.join('?' * len(part))})", part).fetchall())
        finally:
            connection.close()
        return [(r[0], r[1], _json_value(r[2], []), r[3], r[4], _sqlite_datetime(r[5]), _sqlite_datetime(r[6]), _json_value(r[7], {}),
                 r[8], r[9], r[10]) for r in rows]

    def chunk_catalog_rows(self, document_ids: Sequence[int] | None = None) -> np.ndarray:
        """int64 (n, 3): (document id, chunk id, text fingerprint or 0) of every chunk (or of
        those documents' chunks), ordered by document then chunk. Straight from the driver
        into numpy: at a million chunks the ORM's per-row objects cost more than the query."""
        base = 'SELECT document_id, id, COALESCE(fingerprint, 0) FROM chunk'
        order = ' ORDER BY document_id, id'
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            rows: list = []
            if document_ids is None:
                cursor.execute(base + order)
                rows = cursor.fetchall()
            else:
                ids = sorted({int(i) for i in document_ids})
                mark = "?" if self.engine.dialect.name == "sqlite" else "%s"
                for start in range(0, len(ids), 900):
                    part = ids[start : start + 900]
                    cursor.execute(f"{base} WHERE document_id IN ({','.join([mark] * len(part))}){order}", part)
                    rows.extend(cursor.fetchall())
            cursor.close()
        finally:
            connection.close()
        return np.asarray(rows, dtype=np.int64).reshape(-1, 3)

    # --- chunks -----------------------------------------------------------------------------
    def chunk_records(self, chunk_ids: Sequence[int], *, with_embeddings: bool = False) -> dict[int, ChunkRecord]:
        """Chunks joined with their documents, in one round trip per 900 ids.

        On the query path: a pre-built statement rather than an ORM session, because the ORM's
        per-call overhead was the largest cost of a search on a small corpus.
        """
        if len(chunk_ids) == 0:
            return {}
        out: dict[int, ChunkRecord] = {}
        ids = list(dict.fromkeys(int(i) for i in chunk_ids))
        for start in range(0, len(ids), 900):
            for r in self._chunk_rows(ids[start : start + 900], with_embeddings):
                out[r[0]] = ChunkRecord(
                    id=r[0], document_id=r[1], ordinal=r[2], text=r[3], context=r[4], pages=_json_list(r[5]),
                    heading_path=_json_list(r[6]), start=r[7], end=r[8], source=r[9], title=r[10], mime_type=r[11],
                    collection=r[12], groups=_json_list(r[13]), document_context=r[14], kind=r[15],
                    embedding=np.frombuffer(r[16], dtype=np.float32) if with_embeddings and r[16] is not None else None,
                )
        return out

    def chunk_labels(self, chunk_ids: Sequence[int], head_chars: int) -> dict[int, tuple[list[str], str, str, str]]:
        """(heading path, context, kind, the first ``head_chars`` of the text) of each chunk:
        what names a passage's place (``service.query.sections``), without its whole text."""
        out: dict[int, tuple[list[str], str, str, str]] = {}
        ids = list(dict.fromkeys(int(i) for i in chunk_ids))
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 900):
                statement = select(Chunk.id, Chunk.heading_path, Chunk.context, Chunk.kind,
                                   func.substr(Chunk.text, 1, head_chars)).where(Chunk.id.in_(ids[start : start + 900]))
                for r in connection.execute(statement):
                    out[r[0]] = (_json_list(r[1]), r[2] or "", r[3], r[4] or "")
        return out

    def chunk_neighbours(self, document_id: int, first: int, last: int) -> list[tuple[int, int, str, str, str, list[int]]]:
        """(id, ordinal, kind, context, text, pages) of a document's chunks with ordinals in
        ``[first, last]``, in order: what a table window reads around a hit."""
        statement = (
            select(Chunk.id, Chunk.ordinal, Chunk.kind, Chunk.context, Chunk.text, Chunk.pages)
            .where(Chunk.document_id == document_id, Chunk.ordinal >= first, Chunk.ordinal <= last)
            .order_by(Chunk.ordinal)
        )
        with self.engine.connect() as connection:
            return [(r[0], r[1], r[2], r[3], r[4], _json_list(r[5])) for r in connection.execute(statement)]

    def _chunk_rows(self, ids: list[int], with_embeddings: bool) -> list:
        """The rows of ``chunk_records`` for up to 900 ids. On SQLite the pre-rendered SQL goes
        straight to the driver: Core's per-execution work (cache key, expanding the IN list,
        result wrapping) cost about as much as the query itself."""
        if self.engine.dialect.name != "sqlite":
            with self.engine.connect() as connection:
                return connection.execute(_CHUNK_RECORDS_WITH_EMBEDDINGS if with_embeddings else _CHUNK_RECORDS, {"ids": ids}).all()
        sql = (_CHUNK_RECORDS_SQLITE_WITH_EMBEDDINGS if with_embeddings else _CHUNK_RECORDS_SQLITE).format(",".join("?" * len(ids)))
        connection = self.engine.raw_connection()  # from the pool, so its connect-time pragmas apply
        try:
            return connection.driver_connection.execute(sql, ids).fetchall()
        finally:
            connection.close()

    def iter_chunks_for_index(self, batch: int = 2000) -> Iterator[list[tuple]]:
        """Every live chunk as (chunk_id, document_id, keyword text, embedding blob, document
        groups), in id order: what a full rebuild of the derived indexes reads. No re-embedding
        needed."""
        last = 0
        while True:
            with Session(self.engine) as session:
                rows = session.execute(_index_rows_select().where(Chunk.id > last).order_by(Chunk.id).limit(batch)).all()
            if not rows:
                return
            yield [_index_row(r) for r in rows]
            last = rows[-1][0]

    def index_rows(self, chunk_ids: Sequence[int]) -> list[tuple]:
        """Same shape as ``iter_chunks_for_index`` rows, for specific chunks (catch-up)."""
        out: list[tuple] = []
        with Session(self.engine) as session:
            ids = [int(i) for i in chunk_ids]
            for start in range(0, len(ids), 900):
                rows = session.execute(_index_rows_select().where(Chunk.id.in_(ids[start : start + 900]))).all()
                out.extend(_index_row(r) for r in rows)
        return out

    def chunk_ids_of_documents(self, document_ids: Sequence[int]) -> list[int]:
        """Every live chunk id of these documents."""
        ids = sorted({int(i) for i in document_ids})
        chunk_ids: list[int] = []
        with Session(self.engine) as session:
            for start in range(0, len(ids), 900):
                chunk_ids.extend(session.execute(select(Chunk.id).where(Chunk.document_id.in_(ids[start : start + 900]))).scalars())
        return chunk_ids

    def chunks_to_embed(self) -> list[tuple[int, int, str | None, list[str], str, str, str | None]]:
        """(chunk_id, document_id, title, heading_path, context, text, document_context) of every
        chunk in id order: what embedding texts are built from when re-embedding."""
        with Session(self.engine) as session:
            rows = session.execute(
                select(Chunk.id, Chunk.document_id, Document.title, Chunk.heading_path, Chunk.context, Chunk.text, Document.context)
                .join(Document, Document.id == Chunk.document_id).order_by(Chunk.id)
            ).all()
        return [(r[0], r[1], r[2], r[3] or [], r[4], r[5], r[6]) for r in rows]

    def replace_embeddings(self, updates: Sequence[tuple[int, np.ndarray]], fingerprint: str, document_ids: Sequence[int]) -> None:
        """Re-embedding (reindex --reembed): new vectors for existing chunks, same chunk ids."""
        with Session(self.engine) as session, session.begin():
            for chunk_id, vector in updates:
                session.execute(update(Chunk).where(Chunk.id == chunk_id).values(embedding=encode_vector(vector)))
            if document_ids:
                session.execute(update(Document).where(Document.id.in_(list(document_ids))).values(embedding_fingerprint=fingerprint))

    # --- change log ---------------------------------------------------------------------------
    def max_seq(self) -> int:
        with Session(self.engine) as session:
            return int(session.execute(select(func.max(ChangeLog.seq))).scalar() or 0)

    def count_changes_since(self, seq: int) -> int:
        """Change-log rows past ``seq``: how far an index at that position is behind."""
        with Session(self.engine) as session:
            return int(session.execute(select(func.count()).select_from(ChangeLog).where(ChangeLog.seq > seq)).scalar() or 0)

    def changes_since(self, seq: int, limit: int = 50_000) -> list[tuple[int, str, int | None, int | None]]:
        with Session(self.engine) as session:
            return [
                tuple(r)
                for r in session.execute(
                    select(ChangeLog.seq, ChangeLog.op, ChangeLog.chunk_id, ChangeLog.document_id)
                    .where(ChangeLog.seq > seq)
                    .order_by(ChangeLog.seq)
                    .limit(limit)
                ).all()
            ]

    # --- stats ----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with Session(self.engine) as session:
            documents = session.execute(select(func.count()).select_from(Document)).scalar() or 0
            by_status = dict(session.execute(select(Document.status, func.count()).group_by(Document.status)).all())
            chunks = session.execute(select(func.count()).select_from(Chunk)).scalar() or 0
            collections = session.execute(select(func.count()).select_from(Collection)).scalar() or 0
            last_update = session.execute(select(func.max(Document.updated_at))).scalar()
        return {
            "documents": int(documents),
            "documents_by_status": {k: int(v) for k, v in by_status.items()},
            "chunks": int(chunks),
            "collections": int(collections),
            "last_update": last_update.isoformat() if isinstance(last_update, datetime) else None,
            "change_log_position": self.max_seq(),
        }

    def live_chunk_ids(self) -> np.ndarray:
        with Session(self.engine) as session:
            return np.asarray(session.execute(select(Chunk.id).order_by(Chunk.id)).scalars().all(), dtype=np.int64)

    def fingerprints(self) -> dict[str, int]:
        with Session(self.engine) as session:
            rows = session.execute(
                select(Document.embedding_fingerprint, func.count())
                .where(Document.status == DocumentStatus.indexed, Document.chunk_count > 0)
                .group_by(Document.embedding_fingerprint)
            ).all()
        return {str(fp): int(n) for fp, n in rows}


def _json_list(value: Any) -> list:
    """A JSON list column as read: text on SQLite, already decoded by the Postgres driver."""
    if value is None or value == "[]":
        return []
    if isinstance(value, str):
        return list(json.loads(value) or [])
    return list(value)


def _chunk_records_statement(with_embeddings: bool):
    # JSON columns are read as text and decoded by _json_list: most are "[]", and the generic
    # JSON result processor was a third of the query's cost.
    columns = [
        Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.text, Chunk.context, type_coerce(Chunk.pages, Text),
        type_coerce(Chunk.heading_path, Text), Chunk.start, Chunk.end, Document.source, Document.title, Document.mime_type,
        Collection.name, type_coerce(Document.groups, Text), Document.context, Chunk.kind,
    ]
    if with_embeddings:
        columns.append(Chunk.embedding)
    return (
        select(*columns)
        .join(Document, Document.id == Chunk.document_id)
        .join(Collection, Collection.id == Document.collection_id)
        .where(Chunk.id.in_(bindparam("ids", expanding=True)))
    )


_CHUNK_RECORDS = _chunk_records_statement(False)
_CHUNK_RECORDS_WITH_EMBEDDINGS = _chunk_records_statement(True)


def _sqlite_sql(statement) -> str:
    """The statement as SQLite SQL, its expanding ``ids`` list left as ``{}`` for the placeholders."""
    from sqlalchemy.dialects import sqlite

    sql = str(statement.compile(dialect=sqlite.dialect()))
    marker = "__[POSTCOMPILE_ids]"
    if marker not in sql:
        raise RuntimeError("unexpected rendering of the chunk records statement")
    return sql.replace("{", "{{").replace("}", "}}").replace(marker, "{}")


_CHUNK_RECORDS_SQLITE = _sqlite_sql(_CHUNK_RECORDS)
_CHUNK_RECORDS_SQLITE_WITH_EMBEDDINGS = _sqlite_sql(_CHUNK_RECORDS_WITH_EMBEDDINGS)


def _json_value(raw: str | None, empty: Any) -> Any:
    """A JSON column as SQLite returns it (text), the common empty values without the parser."""
    if raw is None or raw == "[]" or raw == "{}":
        return type(empty)()
    return json.loads(raw)


def _sqlite_datetime(raw: str | datetime | None) -> datetime | None:
    """A DateTime column as SQLAlchemy writes it to SQLite ("YYYY-MM-DD HH:MM:SS.ffffff", UTC),
    aware as the database layer returns it."""
    value = raw if raw is None or isinstance(raw, datetime) else datetime.fromisoformat(raw)
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value
