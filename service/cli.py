"""`groundwork`: the command line for admins and scripts.

Exit codes (stable, scripts rely on them):
  0  the command ran (an ingest job with some failed files still exits 0; see its summary)
  1  the command ran and found a problem (`verify`: inconsistent; `ask`: no grounded answer
     with --strict; `documents show/delete`: no such document)
  2  bad usage (unknown flag, bad value)
  3  the job itself could not run (database unreachable or failing its integrity check, model
     not available offline, another installed package shadowing index, ingest or service, ...)
  141  its output was closed early (`groundwork stats | head`), as for any tool ended by SIGPIPE

Errors map to exit codes in one place, ``exit_code_for``: a ``GroundworkError`` by its family,
anything else as a bug (exit 3; ``-v`` prints its traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from service.own_packages import ForeignPackage, check_own_packages

# Nothing from index or ingest is imported at module level: main() first checks that they are ours.

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE, what a shell reports for a tool ended by it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="groundwork", description="Groundwork: grounded answers over your documents.")
    parser.add_argument("--data-dir", type=Path, help="data directory (GROUNDWORK_DATA_DIR, default ./groundwork-data)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (GROUNDWORK_DATABASE_URL); default SQLite in the data directory")
    parser.add_argument("--embedding-model", help="sentence-transformers model name or local path (GROUNDWORK_EMBEDDING_MODEL)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="ingest files and folders (recursive); idempotent and resumable")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--collection", default="default")
    p.add_argument("--group", dest="groups", action="append", default=[], help="access group (repeatable); none = visible to all")
    p.add_argument("--sync", action="store_true", help="remove documents whose source file under PATHS is gone")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="follow symlinks inside the folders given (by default each fails alone with reason symlink)")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="parse and embed on a Ray cluster (the [ray] extra): 'auto' joins the one running here, an address "
                        "joins that one, no value starts a local one (default: GROUNDWORK_RAY_ADDRESS, else no Ray)")

    for name, help_text in (("search", "hybrid search"), ("ask", "grounded answer with citations")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("query")
        p.add_argument("--k", type=int, default=None)
        if name == "search":
            p.add_argument("--mode", choices=["hybrid", "dense", "keyword"], default="hybrid")
            p.add_argument("--collapse", action="store_true", help="one result per document")
            p.add_argument("--max-per-document", type=int, default=None, metavar="N",
                           help="spread results: at most N per document before any document gets more (default: max_hits_per_document)")
        p.add_argument("--collection", action="append", default=None)
        p.add_argument("--as-group", dest="as_groups", action="append", default=None,
                       help="run as a principal with these groups (default: the local admin sees everything)")
        p.add_argument("--no-rerank", action="store_true")
        p.add_argument("--json", action="store_true")
        if name == "ask":
            p.add_argument("--strict", action="store_true", help="exit 1 when the knowledge base has no answer")

    p = sub.add_parser("documents", help="list, show or delete documents")
    dsub = p.add_subparsers(dest="action", required=True)
    d = dsub.add_parser("list")
    d.add_argument("--collection")
    d.add_argument("--status", choices=["indexed", "failed"])
    d.add_argument("--limit", type=int, default=100)
    d.add_argument("--json", action="store_true")
    d = dsub.add_parser("show")
    d.add_argument("id", type=int)
    d.add_argument("--json", action="store_true")
    d = dsub.add_parser("delete")
    d.add_argument("id", type=int)

    p = sub.add_parser("stats", help="counts of documents, chunks and vectors")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("verify", help="compare the database with the indexes (exit 1 when inconsistent)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("reindex", help="rebuild the indexes from stored embeddings into a new version and switch atomically")
    p.add_argument("--reembed", action="store_true", help="re-embed every chunk with the configured model first")
    p.add_argument("--gate", type=Path, metavar="BEIR_DIR",
                   help="switch only if nDCG@10 on these labelled queries (loaded by `eval --beir BEIR_DIR`) does not drop; exit 1 if refused")
    p.add_argument("--split", default="test", help="qrels split of the gate (qrels/<split>.tsv)")
    p.add_argument("--max-drop", type=float, default=None, help="nDCG@10 the new version may lose (default: reindex_gate_max_drop, 0.01)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("snapshot", help="consistent snapshots of the database and indexes, taken while the service runs; restore")
    ssub = p.add_subparsers(dest="action", required=True)
    s = ssub.add_parser("create", help="write a snapshot into DIR (a new or empty folder)")
    s.add_argument("dir", type=Path)
    s.add_argument("--json", action="store_true")
    s = ssub.add_parser("restore", help="restore DIR into the (empty) data directory, then catch up and verify")
    s.add_argument("dir", type=Path)
    s.add_argument("--force", action="store_true", help="replace the database, indexes and uploads of a non-empty data directory")
    s.add_argument("--json", action="store_true")

    p = sub.add_parser("indexes", help="index files of this data directory")
    isub = p.add_subparsers(dest="action", required=True)
    s = isub.add_parser("seed", help="a new replica: copy another data directory's live index files (same database), then catch up")
    s.add_argument("--from", dest="source", type=Path, required=True, metavar="OTHER_DATA_DIR")
    s.add_argument("--json", action="store_true")

    p = sub.add_parser("eval", help="retrieval quality on a BEIR-format dataset")
    p.add_argument("--beir", type=Path, required=True, help="folder with corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--max-queries", type=int, default=0, help="evaluate the first N judged queries only (0 = all)")
    p.add_argument("--modes", default="dense,keyword,hybrid,hybrid+rerank")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="run the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--dev", action="store_true", help="auth off (loopback only), for local trials")
    p.add_argument("--ingest", type=Path, action="append", default=[], help="ingest these paths before serving")

    p = sub.add_parser("keys", help="API keys")
    ksub = p.add_subparsers(dest="action", required=True)
    k = ksub.add_parser("create")
    k.add_argument("--role", choices=["reader", "writer", "admin"], required=True)
    k.add_argument("--group", dest="groups", action="append", default=[])
    k.add_argument("--name", default="")
    k = ksub.add_parser("list")
    k.add_argument("--json", action="store_true")
    k = ksub.add_parser("revoke")
    k.add_argument("key_id", help="key prefix or id")

    p = sub.add_parser("audit", help="the audit trail, newest first: who searched, read or changed what")
    p.add_argument("--key", help="a key's prefix or name")
    p.add_argument("--since", type=_timestamp, help="ISO 8601 time (naive = UTC) or an age such as 24h, 7d, 30m")
    p.add_argument("--until", type=_timestamp, help="rows before this time (same forms as --since)")
    p.add_argument("--document", type=int, help="rows that returned or changed this document id")
    p.add_argument("--action", help="search, answer, chat, chunk_read, document_upload, document_update, ...")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="one JSON array (the same fields as GET /v1/audit)")
    p.add_argument("--prune", action="store_true", help="delete rows older than audit_retention_days, then exit")
    return parser


def _timestamp(value: str):
    """An ISO 8601 time, or an age back from now (``90s``, ``30m``, ``24h``, ``7d``)."""
    from datetime import datetime, timedelta, timezone

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return datetime.now(timezone.utc) - timedelta(**{units[value[-1]]: float(value[:-1])})
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time or an age like 24h: {value!r}") from None


def _settings(args):
    from index.settings import Settings

    overrides = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.database_url:
        overrides["database_url"] = args.database_url
    if args.embedding_model:
        overrides["embedding_model"] = args.embedding_model
    return Settings(**overrides)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    try:
        check_own_packages()
    except ForeignPackage as exc:
        print(f"groundwork: {exc}", file=sys.stderr)
        return EXIT_FAILED
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Model loading chatter (progress bars, hub notices) is noise in a CLI and in logs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ingest.runtime.offline import set_offline_environment

    set_offline_environment()
    try:
        settings = _settings(args)
    except Exception as exc:
        print(f"groundwork: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        code = COMMANDS[args.command](args, settings)
        sys.stdout.flush()  # here, so that a reader gone away is noticed inside the handler below
        return code
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error worth a traceback. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED
    except KeyboardInterrupt:
        print("groundwork: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the job itself could not run
        if args.verbose:
            traceback.print_exc()
        print(f"groundwork: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exit_code_for(exc)


def exit_code_for(exc: Exception) -> int:
    """Bad input (``InputRejected``) is bad usage: 2. Every other ``GroundworkError`` (a model
    not available offline, a broken index, an unreachable database) and any bug mean the job
    could not run: 3."""
    from index.errors import InputRejected

    if isinstance(exc, InputRejected):
        return EXIT_USAGE
    return EXIT_FAILED


def _app(settings, **kw):
    from service.engine import Groundwork

    return Groundwork(settings, **kw)


def cmd_ingest(args, settings) -> int:
    gw = _app(settings)
    try:
        summary = gw.ingest(args.paths, collection=args.collection, groups=args.groups, sync=args.sync,
                            progress=False if (args.no_progress or args.json) else None, follow_symlinks=args.follow_symlinks,
                            index_now=True, ray_address=args.ray or settings.ray_address)
        indexed_now = gw.maintains_indexes
        behind = gw.storage_health()["indexes"]["problems"] if indexed_now else []
        if behind:  # the documents are committed; the indexes replay them later
            print(f"groundwork: warning: the documents are stored but the indexes could not be updated ({'; '.join(behind)}); "
                  "they catch up at the next run or by the running service", file=sys.stderr)
        out = summary.to_json()
        if args.json:
            _print_json(out)
        else:
            print(f"job {out['job_id']}: {out['added']} added, {out['updated']} updated, {out['unchanged']} unchanged, "
                  f"{out['removed']} removed, {out['failed']} failed; {out['chunks']} chunks in {out['seconds']:.1f}s")
            for f in out["files"]:
                if f["status"] == "failed":
                    print(f"  failed  {f['path']}: {f['reason']}" + (f" ({f.get('detail')})" if f.get("detail") else ""))
            if not indexed_now:
                print("note: another process (the running service) maintains the indexes; it will pick these changes up")
        return EXIT_OK
    finally:
        gw.close()


def _query(args, *, k: int, **extra):
    """The pipeline's query from ``search`` / ``ask`` arguments."""
    from service.query.types import Principal, Query, SearchFilters

    if args.as_groups:
        principal = Principal(id="cli", groups=frozenset(args.as_groups))
    else:
        principal = Principal(id="cli-admin", all_access=True)
    filters = SearchFilters(collections=tuple(args.collection)) if args.collection else None
    return Query(args.query, principal, k=k, filters=filters, rerank=False if args.no_rerank else None, **extra)


def cmd_search(args, settings) -> int:
    gw = _app(settings, index_writer=True)
    try:
        outcome = gw.pipeline.search(_query(args, k=args.k or 10, mode=args.mode, collapse=args.collapse,
                                            max_per_document=args.max_per_document))
        if args.json:
            _print_json({
                "results": [_hit_json(h) for h in outcome.hits],
                "provenance": gw.provenance(reranked=outcome.reranked),
                "timings_ms": outcome.timings_ms,
            })
            return EXIT_OK
        if not outcome.hits:
            print("no results")
        for rank, hit in enumerate(outcome.hits, 1):
            where = hit.source + (f" p.{hit.page}" if hit.page else "") + (f" § {hit.section}" if hit.section else "")
            snippet = " ".join(hit.text.split())[:220]
            named = hit.document_context or hit.title or ""
            print(f"{rank:>2}. [{hit.score:.4f}] {named} ({where})\n    {snippet}")
        return EXIT_OK
    finally:
        gw.close()


def _hit_json(hit) -> dict:
    return {
        "chunk_id": hit.chunk_id, "document_id": hit.document_id, "source": hit.source, "title": hit.title,
        "document_context": hit.document_context, "text": hit.text,
        "score": hit.score, "page": hit.page, "section": hit.section, "collection": hit.collection,
        "window": {"text": hit.passage, "chunk_ids": [part.chunk_id for part in hit.window], "pages": hit.passage_pages}
        if hit.window else None,
    }


def cmd_ask(args, settings) -> int:
    gw = _app(settings)
    try:
        answer, outcome = gw.pipeline.answer(_query(args, k=args.k or settings.context_chunks))
        if args.json:
            from dataclasses import asdict

            _print_json({
                "answer": answer.text, "grounded": answer.grounded, "citations": [asdict(c) for c in answer.citations],
                "dropped_citations": answer.dropped_citations, "results": [_hit_json(h) for h in outcome.hits],
                "provenance": gw.provenance(reranked=outcome.reranked), "timings_ms": outcome.timings_ms,
            })
        else:
            print(answer.text)
            if answer.citations:
                print()
                for c in answer.citations:
                    where = c.source + (f", p.{c.page}" if c.page else "")
                    print(f"[{c.marker}] {c.title or ''} ({where}): \"{c.quote}\"")
        return EXIT_PROBLEM if (args.strict and not answer.grounded) else EXIT_OK
    finally:
        gw.close()


def cmd_documents(args, settings) -> int:
    from index.db import open_database
    from index.store import Store

    store = Store(open_database(settings))
    if args.action == "list":
        docs = store.list_documents(collection=args.collection, status=args.status, limit=args.limit)
        collections = store.collections()
        rows = [{"id": d.id, "collection": collections.get(d.collection_id), "source": d.source, "title": d.title, "status": d.status,
                 "reason": d.failure_reason, "chunks": d.chunk_count, "updated_at": d.updated_at} for d in docs]
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                print(f"{r['id']:>6}  {r['status']:<8} {r['chunks']:>5} chunks  {r['source']}" + (f"  ({r['reason']})" if r["reason"] else ""))
        return EXIT_OK
    if args.action == "show":
        doc = store.get_document(args.id)
        if doc is None:
            print(f"no document {args.id}", file=sys.stderr)
            return EXIT_PROBLEM
        data = doc.model_dump(exclude={"text"})
        data["metadata"] = data.pop("doc_metadata", {})
        data["text_chars"] = len(doc.text)
        if args.json:
            _print_json(data)
        else:
            for key, value in data.items():
                print(f"{key:>22}: {value}")
        return EXIT_OK
    if args.action == "delete":
        if not store.delete_document(args.id):
            print(f"no document {args.id}", file=sys.stderr)
            return EXIT_PROBLEM
        print(f"deleted document {args.id}; indexes catch up from the change log")
        return EXIT_OK
    return EXIT_USAGE


def cmd_stats(args, settings) -> int:
    gw = _app(settings)
    try:
        stats = gw.stats()
        if args.json:
            _print_json(stats)
        else:
            for key, value in stats.items():
                print(f"{key:>22}: {value}")
        return EXIT_OK
    finally:
        gw.close()


def cmd_verify(args, settings) -> int:
    from index.errors import StorageCorrupt

    try:
        gw = _app(settings)
    except StorageCorrupt as exc:  # too damaged to open: that is verify's finding, not a failure to run
        if args.json:
            _print_json({"consistent": False, "problems": [str(exc)], "repaired": []})
        else:
            print(f"INCONSISTENT\n  problem: {exc}")
        return EXIT_PROBLEM
    try:
        report = gw.verify()
        repaired = report.get("repaired") or []
        if args.json:
            _print_json(report)
        else:
            print("INCONSISTENT" if not report["consistent"] else ("consistent after repairs" if repaired else "consistent"))
            for key in ("documents", "chunks", "vectors", "keyword_docs", "index_version", "position", "database_position"):
                print(f"{key:>18}: {report.get(key)}")
            integrity = report.get("database_integrity") or {}
            print(f"{'database check':>18}: {'ok' if integrity.get('ok') else 'FAILED'} ({integrity.get('method')})")
            for problem in report["problems"]:
                print(f"  problem: {problem}")
            for repair in repaired:
                print(f"  repaired: {repair}")
        # Damage repaired is still damage found: exit 1 so that a scheduled check raises it.
        return EXIT_OK if report["consistent"] and not repaired else EXIT_PROBLEM
    finally:
        gw.close()


def cmd_reindex(args, settings) -> int:
    if args.gate is None:
        if args.max_drop is not None:
            print("groundwork: --max-drop needs --gate", file=sys.stderr)
            return EXIT_USAGE
        gw = _app(settings)
        try:
            version = gw.reindex(reembed=args.reembed)
            _print_json({"version": version}) if args.json else print(f"switched to index version {version}")
            return EXIT_OK
        finally:
            gw.close()
    from service.quality_gate import GateRefused, QualityGate

    max_drop = settings.reindex_gate_max_drop if args.max_drop is None else args.max_drop
    gw = _app(settings)
    try:
        try:
            result = gw.reindex_gated(QualityGate(args.gate, args.split, max_drop), reembed=args.reembed)
        except GateRefused as refused:  # the live version keeps serving, the database is unchanged
            if args.json:
                _print_json({"version": None, "gate": refused.gate})
            else:
                print(refused.outcome.describe())
                print(f"kept index version {gw.indexes.version}; the database's embeddings are unchanged")
            return EXIT_PROBLEM
        if args.json:
            _print_json({"version": result.version, "gate": result.gate})
        else:
            print(f"quality gate: {_gate_line(result.gate)}")
            print(f"switched to index version {result.version}")
        return EXIT_OK
    finally:
        gw.close()


def _gate_line(gate: dict) -> str:
    return (f"nDCG@10 on {gate['queries']} labelled queries: live {gate['live_ndcg']:.4f} ({gate['live_model']}), "
            f"new {gate['new_ndcg']:.4f} ({gate['new_model']}), change {-gate['drop']:+.4f} (allowed -{gate['max_drop']:.4f})")


def cmd_snapshot(args, settings) -> int:
    from index.snapshot import SnapshotCorrupt
    from service.snapshots import restore_and_verify, take_snapshot

    if args.action == "create":
        summary = take_snapshot(settings, args.dir)
        skipped = (summary["indexes"].get("skipped") or {})
        if args.json:
            _print_json(summary)
        else:
            database, indexes = summary["database"], summary["indexes"]
            print(f"snapshot {summary['path']}: database ({database['kind']}) at change-log position {database['position']}; "
                  f"index version {indexes.get('version')} (vectors at {indexes.get('vectors_position', '-')}, "
                  f"keyword at {indexes.get('keyword_position', '-')}); {summary['files']} files, {summary['bytes']:,} bytes")
            for name, reason in skipped.items():
                print(f"  warning: {name} index not in the snapshot ({reason}); a restore rebuilds it from the database")
        return EXIT_PROBLEM if skipped else EXIT_OK
    try:
        outcome = restore_and_verify(settings, args.dir, force=args.force)
    except SnapshotCorrupt as exc:  # found damaged: nothing was restored
        if args.json:
            _print_json({"restored": None, "problems": exc.problems})
        else:
            print(f"NOT RESTORED: {exc}")
            for problem in exc.problems:
                print(f"  problem: {problem}")
        return EXIT_PROBLEM
    report = outcome["verify"]
    if args.json:
        _print_json(outcome)
    else:
        restored = outcome["restored"]
        print(f"restored {restored['files']} files from {args.dir} (database at position {restored['database']['position']}, "
              f"taken {restored['created_at']})")
        print("verify: " + ("consistent" if report["consistent"] and not report.get("repaired") else "INCONSISTENT"))
        for key in ("documents", "chunks", "vectors", "keyword_docs", "index_version", "position", "database_position"):
            print(f"{key:>18}: {report.get(key)}")
        for problem in report["problems"]:
            print(f"  problem: {problem}")
        for repair in report.get("repaired") or []:
            print(f"  repaired: {repair}")
    return EXIT_OK if report["consistent"] and not report.get("repaired") else EXIT_PROBLEM


def cmd_indexes(args, settings) -> int:
    from index.indexset import seed_indexes

    seeded = seed_indexes(settings, args.source)
    gw = _app(settings)
    try:
        report = gw.verify()  # opens the seeded files, replays the change log since their positions, checks
    finally:
        gw.close()
    consistent = report["consistent"] and not report.get("repaired")
    if args.json:
        _print_json({"seeded": seeded, "verify": report})
    else:
        print(f"seeded index version {seeded['version']} from {args.source} (vectors at {seeded.get('vectors_position', '-')}, "
              f"keyword at {seeded.get('keyword_position', '-')}); caught up to {report.get('position')}")
        for name, reason in (seeded.get("skipped") or {}).items():
            print(f"  note: {name} index not copied ({reason}); rebuilt from the database")
        print("verify: " + ("consistent" if consistent else "INCONSISTENT"))
        for problem in report["problems"]:
            print(f"  problem: {problem}")
    return EXIT_OK if consistent else EXIT_PROBLEM


def cmd_eval(args, settings) -> int:
    from service.beir import run_beir_eval

    gw = _app(settings)
    try:
        report = run_beir_eval(gw, args.beir, split=args.split, k=args.k, max_queries=args.max_queries,
                               modes=[m.strip() for m in args.modes.split(",") if m.strip()])
        if args.json:
            _print_json(report)
        else:
            print(f"dataset {report['dataset']} split {report['split']}: {report['queries']} queries, {report['corpus']} documents")
            print(f"{'mode':<16}{'nDCG@10':>10}{'recall@' + str(args.k):>12}{'MRR@10':>10}{'q/s':>8}")
            for mode, m in report["modes"].items():
                if "error" in m:
                    print(f"{mode:<16}  {m['error']}")
                    continue
                print(f"{mode:<16}{m['ndcg@10']:>10.4f}{m[f'recall@{args.k}']:>12.4f}{m['mrr@10']:>10.4f}{m['qps']:>8.1f}")
        return EXIT_OK
    finally:
        gw.close()


def cmd_serve(args, settings) -> int:
    from service.server import serve

    if args.host:
        settings.host = args.host
    if args.port:
        settings.port = args.port
    if args.dev:
        settings.auth = "off"
    return serve(settings, ingest_paths=args.ingest) or EXIT_OK


def cmd_keys(args, settings) -> int:
    from index.db import open_database
    from index.store import Store
    from service import auth

    store = Store(open_database(settings))
    if args.action == "create":
        plaintext, key = auth.create_key(store, role=args.role, groups=args.groups, name=args.name)
        print(f"created {key.role} key {key.prefix} for groups {key.groups or '[] (public documents only)'}; it is shown once:", file=sys.stderr)
        print(plaintext)
        return EXIT_OK
    if args.action == "list":
        keys = auth.list_keys(store)
        rows = [{"id": k.id, "prefix": k.prefix, "name": k.name, "role": k.role, "groups": k.groups, "created_at": k.created_at,
                 "revoked_at": k.revoked_at} for k in keys]
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                state = "revoked" if r["revoked_at"] else "active"
                print(f"{r['prefix']}  {r['role']:<7} {state:<8} groups={r['groups']} {r['name']}")
        return EXIT_OK
    if args.action == "revoke":
        if not auth.revoke_key(store, args.key_id):
            print(f"no key {args.key_id}", file=sys.stderr)
            return EXIT_PROBLEM
        print(f"revoked {args.key_id}")
        return EXIT_OK
    return EXIT_USAGE


def cmd_audit(args, settings) -> int:
    from index.audit_store import AuditStore
    from index.db import open_database
    from service.audit import AuditTrail

    store = AuditStore(open_database(settings))
    if args.prune:
        removed = AuditTrail(store, settings).prune()
        kept = f"older than {settings.audit_retention_days:g} days" if settings.audit_retention_days > 0 else "none: audit_retention_days is 0"
        print(f"pruned {removed} audit row(s) ({kept})")
        return EXIT_OK
    if args.limit < 1:
        print("groundwork: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    rows = store.query(key=args.key, since=args.since, until=args.until, document_id=args.document, action=args.action,
                       limit=args.limit)
    if args.json:
        _print_json([row.to_json() for row in rows])
        return EXIT_OK
    for row in rows:
        asked = f" q={row.query!r}" if row.query is not None else (f" q#={row.query_sha256[:12]}" if row.query_sha256 else "")
        docs = f" docs={row.document_ids}" if row.document_ids else ""
        print(f"{row.to_json()['occurred_at'][:19]}Z  {row.key_prefix:<12} {row.key_name[:16]:<16} {row.action:<16} "
              f"{row.status}  {row.route}{asked}{docs}")
    return EXIT_OK


COMMANDS = {
    "ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "documents": cmd_documents, "stats": cmd_stats,
    "verify": cmd_verify, "reindex": cmd_reindex, "snapshot": cmd_snapshot, "indexes": cmd_indexes, "eval": cmd_eval, "serve": cmd_serve, "keys": cmd_keys,
    "audit": cmd_audit,
}


if __name__ == "__main__":
    sys.exit(main())
