"""Which reading of a file a stored document holds.

``INGEST_VERSION`` goes up whenever parsing or chunking changes what a file becomes (its text,
elements, chunks, headings). Each document records the version that produced it, and the next
ingest of an unchanged file whose record is older processes it again, instead of skipping it on
its digest: an upgrade then reaches the documents already stored (tables read as tables, scans
that now OCR), and a file that failed before is tried again. Documents stored before versions
existed have none and count as older.

History: 1 tables, document context and OCR; 2 a titled table on a later page than the open
heading is no longer in its section (``ingest.chunking``); 3 a PDF table's title found in the
page's top band and further above it, a headerless table continuing the one above it, and no
signature or sentence guessed to be a heading (``ingest.pdf_layout``, ``ingest.parsing``).
"""

INGEST_VERSION = 3


def is_current(version: int | None) -> bool:
    return (version or 0) >= INGEST_VERSION
