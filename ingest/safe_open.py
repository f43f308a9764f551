"""Open a file to ingest so that what is checked is what is read.

Checking paths once and opening them later lets a file be swapped for a symlink in between
(to ``/etc/passwd``, say). So every file is checked where it is opened, on the descriptor
itself: opened without following a final symlink (``O_NOFOLLOW``), required to be a regular
file (``fstat``), and its real path, read back from ``/proc/self/fd``, required to be the path
asked for (no directory on the way was swapped for a symlink) or, when symlinks may be
followed, to lie inside the allowed roots. Hashing reads that descriptor, and the parser gets
a private copy made from it while hashing, so the file cannot change between the check, the
hash and the parse: the document's sha256 is that of the bytes parsed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ingest.documents import FailureReason, ParsedDocument, ParseFailure
from ingest.source_names import storable

_BLOCK = 1 << 20
_PROC_FD = Path("/proc/self/fd")


@dataclass(frozen=True)
class OpenPolicy:
    """Which files an ingest may open.

    ``follow_symlinks`` False (the command line's default): a symlink, or a path that reaches
    its file through one, fails with reason ``symlink``. True: symlinks are followed, and when
    ``confine_to`` is given (server-side jobs: the ingest roots) the file they lead to must
    lie inside one of those folders.
    """

    follow_symlinks: bool = False
    confine_to: tuple[Path, ...] | None = None

    @classmethod
    def confined(cls, roots) -> OpenPolicy:
        return cls(follow_symlinks=True, confine_to=tuple(Path(r).resolve() for r in roots))


def _symlink_failure(path: Path, why: str) -> ParseFailure:
    return ParseFailure(FailureReason.symlink, storable(f"{path}: {why}"))


def _real_path(fd: int) -> str | None:
    """The path the kernel has for an open descriptor, or None where /proc is unavailable."""
    try:
        return os.readlink(_PROC_FD / str(fd))
    except OSError:
        return None


def _inside(real: str, roots: tuple[Path, ...]) -> bool:
    path = Path(real)
    return any(path == root or path.is_relative_to(root) for root in roots)


@contextmanager
def open_checked(path: Path, policy: OpenPolicy) -> Iterator[tuple[int, os.stat_result]]:
    """``(descriptor, fstat)`` of the regular file at ``path``, checked against ``policy``.

    Raises ParseFailure (reason ``symlink`` or ``unsupported_type``) for a file the policy
    refuses, OSError when it cannot be opened at all.
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the job
    if not policy.follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not policy.follow_symlinks:
            raise _symlink_failure(path, "a symlink, not followed (use --follow-symlinks)") from None
        raise
    try:
        info = os.fstat(fd)
        real = _real_path(fd)
        if real is None:  # no /proc: the descriptor must at least be the file the path names now
            now = os.stat(path, follow_symlinks=policy.follow_symlinks)
            real = os.path.realpath(path) if policy.follow_symlinks else os.path.abspath(path)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise _symlink_failure(path, "the file changed while being opened")
        if not policy.follow_symlinks and real != os.path.abspath(path):
            raise _symlink_failure(path, "reached through a symlinked directory, not followed (use --follow-symlinks)")
        if policy.confine_to is not None and not _inside(real, policy.confine_to):
            raise _symlink_failure(path, "a symlink to a file outside the ingest roots")
        if not stat.S_ISREG(info.st_mode):
            raise ParseFailure(FailureReason.unsupported_type, "not a regular file")
        yield fd, info
    finally:
        os.close(fd)


def hash_checked(path: Path, policy: OpenPolicy) -> tuple[str, int]:
    """(sha256, size) of the file, read through a checked descriptor."""
    with open_checked(path, policy) as (fd, _info):
        digest, size = hashlib.sha256(), 0
        while block := os.read(fd, _BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def symlink_digest(path: Path) -> str | None:
    """A stand-in digest for a symlink that is not followed (the link's own target text), so
    that re-running a job over an unchanged link records nothing new; None if not a symlink."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return hashlib.sha256(b"symlink\0" + os.fsencode(target)).hexdigest()


@contextmanager
def private_copy(path: Path, policy: OpenPolicy, *, max_bytes: int) -> Iterator[tuple[Path, str, int]]:
    """``(copy, sha256, size)``: the checked file copied into a private temporary folder under
    its own (storable) name, so parsers that go by the extension still see it. A file that
    grows past ``max_bytes`` while being copied fails as too_large."""
    folder = Path(tempfile.mkdtemp(prefix="groundwork-parse-"))
    try:
        name = storable(Path(path).name) or "file"
        copy = folder / name
        digest, size = hashlib.sha256(), 0
        with open_checked(path, policy) as (fd, _info):
            with open(copy, "xb") as out:
                while block := os.read(fd, _BLOCK):
                    size += len(block)
                    if size > max_bytes:
                        raise ParseFailure(FailureReason.too_large, f"more than the {max_bytes}-byte limit")
                    digest.update(block)
                    out.write(block)
        yield copy, digest.hexdigest(), size
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_checked(parse_fn: Callable[..., ParsedDocument], path: Path, policy: OpenPolicy, *, max_bytes: int,
                  max_chars: int) -> ParsedDocument:
    """Parse the checked file from a private copy; the result carries the sha256 and size of
    exactly the bytes parsed. Raises ParseFailure like the parser does."""
    try:
        with private_copy(path, policy, max_bytes=max_bytes) as (copy, digest, size):
            parsed = parse_fn(copy, max_bytes=max_bytes, max_chars=max_chars)
    except OSError as exc:
        raise ParseFailure(FailureReason.corrupt, storable(f"cannot read file: {exc.strerror or exc}")) from None
    return replace(parsed, sha256=digest, size_bytes=size)
