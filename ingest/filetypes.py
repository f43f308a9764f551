"""Decide what a file really is from its bytes.

Extensions lie (a ``.pdf`` that is an HTML error page, an email saved as ``.txt``), so the
container is identified by content: magic bytes, the stream names inside OLE compound files,
the member names inside ZIP packages. The extension only breaks ties between plain-text
formats that share the same bytes (Markdown, reStructuredText, Org, CSV, TSV, JSON, text).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
import zipfile
from pathlib import Path

from ingest.documents import FailureReason, ParseFailure

HEAD_BYTES = 64 * 1024
"""How much of a file ``detect_type`` expects to be given as ``head``."""

MIME_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "doc": "application/msword",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "ppt": "application/vnd.ms-powerpoint",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "html": "text/html",
    "md": "text/markdown",
    "rst": "text/x-rst",
    "org": "text/x-org",
    "txt": "text/plain",
    "eml": "message/rfc822",
    "msg": "application/vnd.ms-outlook",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "odt": "application/vnd.oasis.opendocument.text",
    "epub": "application/epub+zip",
    "rtf": "application/rtf",
    "xml": "application/xml",
    # Images: read by OCR (ingest/ocr.py).
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
}

IMAGE_TYPES = frozenset({"png", "jpeg", "tiff", "bmp", "gif", "webp", "heic"})
"""Types whose text, if any, is only reachable through OCR."""

TEXT_TYPES = frozenset({"html", "md", "rst", "org", "txt", "eml", "csv", "tsv", "json", "ndjson", "xml"})
"""Types whose bytes are characters in some encoding (see ``decode_text``)."""

_TEXT_EXTENSIONS: dict[str, str] = {
    ".md": "md", ".markdown": "md", ".mdown": "md", ".mkd": "md",
    ".rst": "rst", ".rest": "rst",
    ".org": "org",
    ".csv": "csv",
    ".tsv": "tsv", ".tab": "tsv",
    ".json": "json",
    ".ndjson": "ndjson", ".jsonl": "ndjson",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".xml": "xml", ".xsl": "xml", ".xslt": "xml", ".xsd": "xml", ".rss": "xml", ".atom": "xml",
    ".eml": "eml", ".mht": "eml", ".mhtml": "eml",
}

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

# Binary formats we can name but not read; only consulted once the bytes are known not to be text.
_BINARY_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG image"),
    (b"\xff\xd8\xff", 0, "JPEG image"),
    (b"GIF87a", 0, "GIF image"),
    (b"GIF89a", 0, "GIF image"),
    (b"II*\x00", 0, "TIFF image"),
    (b"MM\x00*", 0, "TIFF image"),
    (b"BM", 0, "BMP image"),
    (b"ftypheic", 4, "HEIC image"),
    (b"ftypheix", 4, "HEIC image"),
    (b"ftypmif1", 4, "HEIF image"),
    (b"ftyp", 4, "MP4/QuickTime media"),
    (b"ID3", 0, "MP3 audio"),
    (b"OggS", 0, "Ogg media"),
    (b"fLaC", 0, "FLAC audio"),
    (b"\x7fELF", 0, "ELF executable"),
    (b"MZ", 0, "Windows executable"),
    (b"\x1f\x8b", 0, "gzip archive"),
    (b"BZh", 0, "bzip2 archive"),
    (b"\xfd7zXZ\x00", 0, "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "RAR archive"),
    (b"\x28\xb5\x2f\xfd", 0, "zstd archive"),
    (b"SQLite format 3\x00", 0, "SQLite database"),
    (b"\x00asm", 0, "WebAssembly module"),
    (b"\xca\xfe\xba\xbe", 0, "Java class file"),
)

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v\x1b")
_MAX_CONTROL_SHARE = 0.05

_EMAIL_HEADERS = frozenset({
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version", "received",
    "return-path", "content-type", "delivered-to", "reply-to", "sender", "x-mailer",
    "in-reply-to", "references", "content-transfer-encoding", "x-original-to",
})
_EMAIL_ANCHORS = frozenset({"from", "received", "message-id", "mime-version", "return-path", "delivered-to"})
_FIRST_ELEMENT = re.compile(r"<([A-Za-z_][\w:.-]*)")
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,60}):(?:[ \t]|$)")


def mime_for(type_key: str) -> str:
    """The MIME type reported for a canonical type key."""
    return MIME_TYPES[type_key]


def _unsupported(what: str) -> ParseFailure:
    return ParseFailure(FailureReason.unsupported_type, what)


# --------------------------------------------------------------------------------------------
# text decoding (pure)
# --------------------------------------------------------------------------------------------


def _bom_encoding(data: bytes) -> tuple[str, int] | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding, len(bom)
    return None


def _wide_encoding_without_bom(sample: bytes) -> str | None:
    """UTF-16/32 text without a BOM shows up as a regular pattern of zero bytes."""
    sample = sample[: 4096 - 4096 % 4]
    if len(sample) < 8 or b"\x00" not in sample:
        return None

    def zero_share(offset: int, step: int) -> float:
        column = sample[offset::step]
        return column.count(0) / max(1, len(column))

    if zero_share(1, 4) > 0.9 and zero_share(2, 4) > 0.9 and zero_share(3, 4) > 0.9:
        return "utf-32-le"
    if zero_share(0, 4) > 0.9 and zero_share(1, 4) > 0.9 and zero_share(2, 4) > 0.9:
        return "utf-32-be"
    even, odd = zero_share(0, 2), zero_share(1, 2)
    if even > 0.6 and odd < 0.1:
        return "utf-16-be"
    if odd > 0.6 and even < 0.1:
        return "utf-16-le"
    return None


def _decodes(data: bytes, encoding: str, *, complete: bool) -> str | None:
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        return decoder.decode(data, final=complete)
    except (UnicodeDecodeError, LookupError):
        return None


def guess_encoding(data: bytes, *, complete: bool = True) -> tuple[str, int]:
    """Return ``(encoding, bytes_to_skip)`` for text in ``data``.

    ``complete=False`` means ``data`` is only the start of a file, so a multi-byte character
    cut off at its end is not held against an encoding.
    """
    bom = _bom_encoding(data)
    if bom:
        return bom
    wide = _wide_encoding_without_bom(data)
    if wide:
        return wide, 0
    if _decodes(data, "utf-8", complete=complete) is not None:
        return "utf-8", 0
    from charset_normalizer import from_bytes

    cp1252_decodes = _decodes(data, "cp1252", complete=complete) is not None
    matches = from_bytes(data[:HEAD_BYTES])
    best = matches.best()
    if best is not None and best.encoding:
        # charset_normalizer breaks ties between Latin code pages arbitrarily (often cp1250);
        # without language evidence for another one, Western cp1252 is the likelier source.
        tied = any(m.encoding == "cp1252" and m.chaos <= best.chaos and m.coherence >= best.coherence for m in matches)
        if cp1252_decodes and (tied or best.coherence == 0):
            return "cp1252", 0
        encoding = codecs.lookup(best.encoding).name
        if _decodes(data, encoding, complete=complete) is not None:
            return encoding, 0
    return ("cp1252" if cp1252_decodes else "latin-1"), 0


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode a whole text file, returning ``(text, encoding)``; never raises on bad bytes."""
    encoding, skip = guess_encoding(data, complete=True)
    text = data[skip:].decode(encoding, errors="replace")
    return text.lstrip("\ufeff"), encoding


def looks_binary(text: str, raw: bytes, encoding: str) -> bool:
    """Text is rarely peppered with control characters or NUL bytes; binary data is."""
    if not encoding.startswith(("utf-16", "utf-32")) and b"\x00" in raw:
        return True
    if not text:
        return False
    controls = sum(1 for ch in text if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) == "Cc")
    return controls / len(text) > _MAX_CONTROL_SHARE


# --------------------------------------------------------------------------------------------
# content sniffing (pure)
# --------------------------------------------------------------------------------------------


def looks_like_email(text: str) -> bool:
    """An RFC 822 message opens with a block of ``Name: value`` header lines."""
    known: set[str] = set()
    lines = text.lstrip("\r\n").splitlines()[:60]
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    for line in lines:
        if not line.strip():
            break
        if line[0] in " \t":
            continue
        match = _HEADER_LINE.match(line)
        if not match:
            return False
        name = match.group(1).lower()
        if name in _EMAIL_HEADERS:
            known.add(name)
    return len(known) >= 2 and bool(known & _EMAIL_ANCHORS)


def _markup_type(text: str) -> str | None:
    start = text.lstrip()[:4096]
    lowered = start.lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "html"
    if lowered.startswith(("<?xml", "<!--", "<!doctype")):
        if "<!doctype html" in lowered:
            return "html"
        root = _FIRST_ELEMENT.search(start)
        if root and root.group(1).rsplit(":", 1)[-1].lower() == "html":
            return "html"
        if lowered.startswith("<?xml"):
            return "xml"
    return None


def text_type(text: str, extension: str) -> str:
    """Classify decoded text: unmistakable content first, then the extension, then plain text."""
    if text.lstrip().startswith("{\\rtf"):
        return "rtf"
    markup = _markup_type(text)
    if markup == "html":
        return "html"
    by_extension = _TEXT_EXTENSIONS.get(extension)
    if by_extension == "html":
        return "html"
    if markup == "xml":
        return "xml" if by_extension in (None, "xml") else by_extension
    if looks_like_email(text):
        return "eml"
    return by_extension or "txt"


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1")
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)


def image_type(head: bytes) -> str | None:
    """The image type key of an image format OCR can read, from its magic bytes."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heic"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "bmp"
    return None


def _binary_signature(head: bytes) -> str | None:
    for magic, offset, name in _BINARY_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return name
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WAVE": "WAV audio", b"WEBP": "WebP image", b"AVI ": "AVI video"}.get(head[8:12], "RIFF media")
    return None


# --------------------------------------------------------------------------------------------
# containers (need the file itself)
# --------------------------------------------------------------------------------------------


def _ole_type(path: Path) -> str:
    import olefile

    try:
        with olefile.OleFileIO(str(path)) as ole:
            streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=True)}
    except Exception as exc:  # olefile raises plain OSError/struct errors on damage
        raise ParseFailure(FailureReason.corrupt, f"damaged OLE compound file: {exc}") from exc
    top_level = {name.split("/")[0] for name in streams}
    if {"EncryptionInfo", "EncryptedPackage"} <= top_level:
        raise ParseFailure(FailureReason.encrypted, "password-protected Office (OOXML) document")
    if "WordDocument" in top_level:
        return "doc"
    if top_level & {"Workbook", "Book"}:
        return "xls"
    if "PowerPoint Document" in top_level:
        return "ppt"
    if any(name.startswith("__substg1.0_") for name in top_level) or "__properties_version1.0" in top_level:
        return "msg"
    raise _unsupported("OLE compound file that is not a Word, Excel, PowerPoint or Outlook document")


_ODF_MIMETYPES = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/epub+zip": "epub",
}


def _zip_type(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            mimetype = ""
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:200].decode("ascii", "replace").strip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ParseFailure(FailureReason.corrupt, f"damaged ZIP container: {exc}") from exc
    if mimetype:
        if mimetype in _ODF_MIMETYPES:
            return _ODF_MIMETYPES[mimetype]
        raise _unsupported(f"ZIP package of type {mimetype}")
    if "[Content_Types].xml" in names:
        prefixes = {name.split("/", 1)[0] for name in names if "/" in name}
        for folder, type_key in (("word", "docx"), ("ppt", "pptx"), ("xl", "xlsx")):
            if folder in prefixes:
                return type_key
        raise _unsupported("Office Open XML package that is not a document, presentation or workbook")
    if "META-INF/container.xml" in names:
        return "epub"
    raise _unsupported("ZIP archive (archives are not unpacked)")


# --------------------------------------------------------------------------------------------


def detect_type(path: Path, head: bytes) -> str:
    """Canonical type key of the file at ``path`` whose first bytes are ``head``.

    Images (PNG, JPEG, TIFF, BMP, GIF, WebP, HEIC) get their own type keys: their text is read
    by OCR. Raises ``ParseFailure`` with ``unsupported_type`` for formats that carry no
    extractable text here (audio, video, archives, executables), ``encrypted`` for a password-protected
    OOXML container (its real kind is unknowable without the password) and ``corrupt`` for a
    container whose directory cannot be read.
    """
    if not head:
        raise ParseFailure(FailureReason.empty, "file is empty")
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(_OLE_MAGIC):
        return _ole_type(path)
    if head.startswith(_ZIP_MAGICS):
        return _zip_type(path)
    if head.lstrip()[:5] == b"{\\rtf":
        return "rtf"
    encoding, skip = guess_encoding(head, complete=False)
    sample = _decodes(head[skip:], encoding, complete=False)
    if sample is None:
        sample = head[skip:].decode(encoding, errors="replace")
    if looks_binary(sample, head, encoding):
        image = image_type(head)
        if image:
            return image
        signature = _binary_signature(head)
        if signature:
            raise _unsupported(f"{signature} (no text to extract)")
        raise _unsupported(f"binary data of an unknown format ({_describe_binary(head)})")
    return text_type(sample.lstrip("\ufeff"), path.suffix.lower())


def _describe_binary(head: bytes) -> str:
    """Best-effort name for an unknown binary, only to make the failure detail useful."""
    try:
        import filetype

        kind = filetype.guess(head)
        if kind is not None:
            return kind.mime
    except Exception:
        pass
    try:
        import magic

        return magic.from_buffer(head)
    except Exception:
        return "unrecognised"
