"""File names that are not valid text become storable, reversible source names."""

from __future__ import annotations

import json
import os

from hypothesis import given
from hypothesis import strategies as st

from ingest.source_names import path_of_source, source_name, storable

# One file name's bytes: anything but "/" and NUL, and no literal backslash (the one
# ambiguity, documented in the module, is a valid name that itself spells "\xHH"). "." and ".."
# name folders, never a file (and a path ending in one normalises away).
component = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_").replace(b"\\", b"_")) \
    .filter(lambda b: b not in (b".", b".."))


@given(component)
def test_every_byte_name_round_trips_and_is_storable(raw):
    path = os.fsdecode(b"/data/" + raw)
    source = source_name(path)
    source.encode("utf-8")  # what the database write choked on
    json.dumps(source, ensure_ascii=False).encode("utf-8")
    assert os.fsencode(path_of_source(source)) == b"/data/" + raw


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_valid_text_is_left_alone(text):
    assert storable(text) == text
    assert source_name("/x/" + text) == "/x/" + text


def test_undecodable_bytes_are_written_as_escapes():
    assert source_name(os.fsdecode(b"/d/bad\xff\xfe.md")) == "/d/bad\\xff\\xfe.md"


def test_lone_surrogates_from_elsewhere_become_escapes_too():
    assert storable("a\ud800b") == "a\\ud800b"
