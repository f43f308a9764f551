"""The error vocabulary: one root and a few families every layer raises.

It sits at the bottom of the dependency chain (service -> ingest -> index) so that any layer can
raise a family member, and the two front doors map families to outcomes in one place each: the
CLI to exit codes, the HTTP API to status codes. Anything that is not a ``GroundworkError`` is a
bug, and is reported as one (exit 3 with the traceback under ``-v``; HTTP 500 with a request id).
"""

from __future__ import annotations


class GroundworkError(Exception):
    """Root of every error Groundwork raises on purpose.

    ``code`` is the stable machine-readable name a client or script can act on; subclasses set
    a family default and instances may narrow it.
    """

    code = "error"
    # Whether retrying the same call later may succeed on its own (the HTTP API then sends
    # Retry-After): a database restarting, an index being rebuilt.
    transient = False

    def __init__(self, message: str = "", *, code: str | None = None, transient: bool | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code
        if transient is not None:
            self.transient = transient


class InputRejected(GroundworkError):
    """The caller's input cannot be used (a bad request, a path outside the allowed roots, a
    body nested too deeply). The caller can fix it; retrying unchanged will fail again."""

    code = "invalid_request"


class ModelUnavailable(GroundworkError):
    """A model (embedder, reranker, generator) cannot be loaded or reached: a deployment
    problem, never downloaded at run time."""

    code = "model_unavailable"


class IndexProblem(GroundworkError):
    """A derived index cannot serve as it stands. It is rebuildable from the database."""

    code = "index_unavailable"


class IndexCorrupt(IndexProblem):
    """An index file failed its checksum, could not be read, or its engine failed on it."""

    code = "index_corrupt"


class IndexMismatch(IndexProblem):
    """An index was built for another model, engine, analyzer or format."""

    code = "index_mismatch"


class StorageUnavailable(GroundworkError):
    """The database (or the disk under it) cannot be used right now: unreachable, full, or
    failing its own integrity check. Retrying later may work; nothing was written."""

    code = "storage_unavailable"
    transient = True


class StorageCorrupt(StorageUnavailable):
    """The database failed its own integrity check: writing into it would spread the damage."""

    code = "storage_corrupt"
    transient = False  # it needs an operator (see the README, "Reliability")
