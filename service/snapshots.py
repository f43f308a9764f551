"""Snapshot and restore as the front doors run them: ``index.snapshot`` copies the files; a
restore is finished by opening the result, which catches the indexes up to the database, and
by ``verify``, whose report says whether the restored service is whole."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

from index.settings import Settings
from index.snapshot import SnapshotRefused, create_snapshot, restore_snapshot

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def snapshot_folder(settings: Settings, name: str | None) -> Path:
    """Where the HTTP API writes the snapshot called ``name`` (default: the UTC time)."""
    name = name or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    if not _NAME.fullmatch(name):
        raise SnapshotRefused("a snapshot name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return (settings.snapshot_dir or settings.data_dir / "snapshots") / name


def take_snapshot(settings: Settings, target: Path) -> dict:
    """Write a snapshot; its summary (positions, file count, bytes) and where it is."""
    return create_snapshot(settings, target).summary() | {"path": str(target)}


def restore_and_verify(settings: Settings, folder: Path, *, force: bool = False, embedder=None) -> dict:
    """Restore ``folder`` into the configured data directory, open it (the indexes replay the
    change-log rows the database copy holds beyond them) and verify it."""
    from service.engine import Groundwork

    manifest = restore_snapshot(settings, folder, force=force)
    groundwork = Groundwork(settings, embedder=embedder)
    try:
        report = groundwork.verify()
    finally:
        groundwork.close()
    return {"restored": manifest.summary(), "verify": report}
