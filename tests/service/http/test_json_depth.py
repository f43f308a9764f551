"""The nesting check on raw JSON bodies: exact on valid JSON, blind to brackets in strings,
linear on hostile input."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.errors import InputRejected
from service.http.json_depth import check_json_depth, json_depth

_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
_documents = st.recursive(_leaves, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
                          max_leaves=20)


def reference_depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=100, deadline=None)
@given(_documents)
def test_depth_of_valid_json_is_exact(value) -> None:
    text = json.dumps(value)
    assert json_depth(text) == reference_depth(value)
    assert json_depth(json.dumps(value, ensure_ascii=False).encode()) == reference_depth(value)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=2, max_value=64), st.sampled_from(["[", '{"a":']))
def test_the_check_refuses_exactly_what_nests_deeper_than_the_limit(depth: int, limit: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "1" + closer * depth
    if depth > limit:
        with pytest.raises(InputRejected) as refused:
            check_json_depth(text, limit)
        assert refused.value.code == "too_deeply_nested"
    else:
        check_json_depth(text, limit)


@pytest.mark.parametrize("text", [
    json.dumps({"query": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}),
    json.dumps({"query": '{"nested": ' * 50}),
    json.dumps({"query": "\\\"[[[[" * 40}),  # escaped quotes do not end the string
])
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    assert json_depth(text) == 1
    check_json_depth(text, 2)


def test_unterminated_strings_and_stray_backslashes_end_the_scan_cleanly() -> None:
    assert json_depth(b'[["abc') == 2
    assert json_depth(b'[["abc\\') == 2
    assert json_depth(b'"' + b'\\"' * 1000) == 0
    assert json_depth(b"]]]]") == 0


def test_hostile_bodies_are_checked_in_linear_time() -> None:
    """A million brackets, or a million unterminated escaped quotes, in well under a second."""
    for body in (b"[" * 1_000_000, b'"\\"' * 333_333 + b"[" * 100, b'["' * 500_000):
        started = time.perf_counter()
        try:
            check_json_depth(body, 32)
        except InputRejected:
            pass
        assert time.perf_counter() - started < 1.0
