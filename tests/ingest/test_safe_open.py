"""Files are checked where they are opened: symlinks, swapped directories, non-files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ingest.documents import Element, ElementKind, FailureReason, ParsedDocument, ParseFailure
from ingest.safe_open import OpenPolicy, hash_checked, open_checked, parse_checked, private_copy


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret")
    (root / "sub" / "plain.txt").write_text("inside text")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "inner-link.txt").symlink_to(root / "sub" / "plain.txt")
    return root, outside


def echo_parse(path: Path, *, max_bytes: int, max_chars: int) -> ParsedDocument:
    text = path.read_text()
    return ParsedDocument(text, [Element(ElementKind.text, 0, len(text))], "text/plain", metadata={"name": path.name})


def test_a_regular_file_is_hashed_from_its_descriptor(tree):
    root, _ = tree
    digest, size = hash_checked(root / "sub" / "plain.txt", OpenPolicy())
    assert (digest, size) == (hashlib.sha256(b"inside text").hexdigest(), 11)


def test_a_symlink_is_refused_unless_followed(tree):
    root, _ = tree
    with pytest.raises(ParseFailure) as refused:
        hash_checked(root / "link.txt", OpenPolicy())
    assert refused.value.reason is FailureReason.symlink and "--follow-symlinks" in refused.value.detail
    assert hash_checked(root / "link.txt", OpenPolicy(follow_symlinks=True))[1] == len("outside secret")


def test_confined_following_stays_inside_the_roots(tree):
    root, _ = tree
    policy = OpenPolicy.confined([root])
    assert hash_checked(root / "inner-link.txt", policy)[1] == len("inside text")
    with pytest.raises(ParseFailure) as refused:
        hash_checked(root / "link.txt", policy)
    assert refused.value.reason is FailureReason.symlink and "outside the ingest roots" in refused.value.detail


def test_a_directory_swapped_for_a_symlink_is_noticed_on_the_descriptor(tree):
    """O_NOFOLLOW guards only the last component; the descriptor's real path guards the rest."""
    root, outside = tree
    (outside / "plain.txt").write_text("a different file")
    (root / "sub" / "plain.txt").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ParseFailure) as refused:
        hash_checked(root / "sub" / "plain.txt", OpenPolicy())
    assert refused.value.reason is FailureReason.symlink and "symlinked directory" in refused.value.detail


def test_a_fifo_fails_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ParseFailure) as refused:
        with open_checked(fifo, OpenPolicy()):
            pass
    assert refused.value.reason is FailureReason.unsupported_type


def test_the_parser_reads_a_private_copy_and_the_digest_is_of_those_bytes(tree):
    root, _ = tree
    parsed = parse_checked(echo_parse, root / "sub" / "plain.txt", OpenPolicy(), max_bytes=1000, max_chars=1000)
    assert parsed.text == "inside text" and parsed.metadata["name"] == "plain.txt"  # same name: same extension
    assert parsed.sha256 == hashlib.sha256(b"inside text").hexdigest() and parsed.size_bytes == 11


def test_the_private_copy_is_gone_afterwards_and_growth_past_the_limit_fails(tree):
    root, _ = tree
    with private_copy(root / "sub" / "plain.txt", OpenPolicy(), max_bytes=100) as (copy, _digest, _size):
        assert copy.read_text() == "inside text"
    assert not copy.exists() and not copy.parent.exists()
    with pytest.raises(ParseFailure) as refused:
        with private_copy(root / "sub" / "plain.txt", OpenPolicy(), max_bytes=4):
            pass
    assert refused.value.reason is FailureReason.too_large


def test_an_undecodable_name_is_copied_under_a_storable_one(tmp_path):
    raw = os.fsdecode(os.fsencode(tmp_path) + b"/bad\xff.txt")
    Path(raw).write_text("bytes name")
    parsed = parse_checked(echo_parse, Path(raw), OpenPolicy(), max_bytes=1000, max_chars=1000)
    assert parsed.metadata["name"] == "bad\\xff.txt"
