"""Boilerplate: passages repeated across many documents (pure).

The same legal notice, social-media footer or cover-page checklist appears in every document
of a kind; it matches many questions a little and answers none, yet can fill the top results.
Each chunk gets a fingerprint of its normalised text at write time; a fingerprint found in at
least ``min_documents`` distinct documents marks its chunks as boilerplate, which ranking
demotes. Counting distinct documents (not occurrences) keeps a table repeated inside one
report from being mistaken for boilerplate.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

_WORDS = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
    """Case, spacing and punctuation removed: how a repeated passage differs between documents."""
    return " ".join(_WORDS.findall(text.casefold()))


def text_fingerprint(text: str) -> int | None:
    """A signed 64-bit hash of the normalised text (fits a SQL BIGINT); None when nothing is left."""
    normal = normalise(text)
    if not normal:
        return None
    value = int.from_bytes(hashlib.blake2b(normal.encode("utf-8"), digest_size=8).digest(), "big", signed=True)
    return value or 1  # 0 stands for "no fingerprint" in the catalog's arrays


def shared_document_counts(document_ids: np.ndarray, fingerprints: np.ndarray) -> np.ndarray:
    """For each chunk (given by its document and fingerprint, 0 = none), how many distinct
    documents hold a chunk with the same fingerprint; 1 for a chunk without one."""
    document_ids = np.asarray(document_ids, dtype=np.int64)
    fingerprints = np.asarray(fingerprints, dtype=np.int64)
    counts = np.ones(len(fingerprints), dtype=np.int32)
    known = np.flatnonzero(fingerprints != 0)
    if len(known) == 0:
        return counts
    # Distinct (fingerprint, document) pairs by one sort of both columns (np.unique over rows
    # took seconds at a million chunks), then documents per fingerprint.
    prints, documents = fingerprints[known], document_ids[known]
    order = np.lexsort((documents, prints))
    sorted_prints, sorted_documents = prints[order], documents[order]
    first_of_pair = np.ones(len(order), dtype=bool)
    first_of_pair[1:] = (sorted_prints[1:] != sorted_prints[:-1]) | (sorted_documents[1:] != sorted_documents[:-1])
    values, per_value = np.unique(sorted_prints[first_of_pair], return_counts=True)
    counts[known] = per_value[np.searchsorted(values, prints)]
    return counts
