"""Token counting for chunk budgets, with the embedding model's tokenizer or a cheap stand-in.

Chunking needs two things from a tokenizer: how many tokens a text costs, and where each
token sits in the text (to cut long passages at token boundaries). Counters may also offer
``count_many`` / ``token_spans_many`` so that a whole document is tokenized in one batch, and
declare ``whitespace_bounded = True`` when no token ever crosses ASCII whitespace and text
between two such whitespace characters tokenizes the same on its own as in context; chunking
then trusts summed counts instead of tokenizing every chunk a second time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from os import PathLike
from typing import Any, Protocol

# Pre-tokenizers that split on whitespace before any subword model runs, so that a count is
# additive across whitespace.
_WHITESPACE_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})

# Texts per backend call: bounds the memory held by encodings without losing the batching.
_BATCH = 512

# Longer texts are cut at spaces into blocks of about this many characters before encoding:
# the backend parallelizes across the texts of a batch, never within one text.
_BLOCK_CHARS = 32_768


class TokenCounter(Protocol):
    """What chunking needs from a tokenizer.

    A whitespace-bounded counter must also keep ``count(text) == len(token_spans(text))``;
    chunking re-checks every chunk counted by any other counter with ``count``.
    """

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of each token of ``text``, special tokens excluded."""
        ...

    def count(self, text: str) -> int:
        """Number of tokens of ``text``, special tokens excluded."""
        ...


def count_many(counter: TokenCounter, texts: Sequence[str]) -> list[int]:
    """Token counts of ``texts``, in one batch when the counter supports it."""
    batch = getattr(counter, "count_many", None)
    if batch is not None:
        return list(batch(texts))
    return [counter.count(text) for text in texts]


def token_spans_many(counter: TokenCounter, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Token spans of ``texts``, in one batch when the counter supports it."""
    batch = getattr(counter, "token_spans_many", None)
    if batch is not None:
        return list(batch(texts))
    return [counter.token_spans(text) for text in texts]


def is_whitespace_bounded(counter: TokenCounter) -> bool:
    """Whether counts of whitespace-separated pieces may simply be added up."""
    return getattr(counter, "whitespace_bounded", False) is True


class RegexTokenCounter:
    """Words and single punctuation marks: a fast, dependency-free stand-in for tests."""

    whitespace_bounded = True
    _TOKEN = re.compile(r"\w+|[^\w\s]")

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in self._TOKEN.finditer(text)]

    def count(self, text: str) -> int:
        return sum(1 for _ in self._TOKEN.finditer(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(text) for text in texts]

    def token_spans_many(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [self.token_spans(text) for text in texts]


class HFTokenCounter:
    """Counts with a Hugging Face fast tokenizer, exactly as the embedding model will see text.

    It drives a private copy of the Rust backend: the shared one carries the model's
    truncation and padding settings (all-MiniLM-L6-v2 ships with both at 128), which would
    cap counts, and calling the backend directly skips per-call Python overhead and the
    "sequence longer than the model" warnings. Token ids and offsets are the same as
    ``tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)`` gives.
    """

    def __init__(self, tokenizer: Any):
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError("HFTokenCounter needs a fast (Rust-backed) tokenizer for offsets")
        from tokenizers import Tokenizer

        self.tokenizer = tokenizer
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        pre_tokenizer = self._backend.pre_tokenizer
        self.whitespace_bounded = type(pre_tokenizer).__name__ in _WHITESPACE_PRE_TOKENIZERS

    @classmethod
    def from_model_path(cls, path: str | PathLike[str]) -> HFTokenCounter:
        """Load the tokenizer stored beside a model; never downloads."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True))

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.token_spans_many([text])[0]

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        counts = [0] * len(texts)
        for owner, _, encoding in self._encode(texts):
            counts[owner] += len(encoding)
        return counts

    def token_spans_many(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        spans: list[list[tuple[int, int]]] = [[] for _ in texts]
        for owner, offset, encoding in self._encode(texts):
            if offset:
                spans[owner].extend((start + offset, end + offset) for start, end in encoding.offsets)
            else:
                spans[owner].extend(encoding.offsets)
        return spans

    def _encode(self, texts: Sequence[str]) -> Iterator[tuple[int, int, Any]]:
        """(text index, block offset, encoding) for every block of every text, in order."""
        blocks = [(owner, start, end) for owner, text in enumerate(texts) for start, end in self._blocks(text)]
        for at in range(0, len(blocks), _BATCH):
            batch = blocks[at : at + _BATCH]
            pieces = [
                texts[owner][start:end] if end - start < len(texts[owner]) else texts[owner]
                for owner, start, end in batch
            ]
            encodings = self._backend.encode_batch(pieces, add_special_tokens=False)
            for (owner, start, _), encoding in zip(batch, encodings):
                yield owner, start, encoding

    def _blocks(self, text: str) -> list[tuple[int, int]]:
        """Cuts just before a space or newline, where a whitespace-bounded tokenizer never joins."""
        if not self.whitespace_bounded or len(text) <= _BLOCK_CHARS:
            return [(0, len(text))]
        blocks: list[tuple[int, int]] = []
        start = 0
        while len(text) - start > _BLOCK_CHARS:
            limit = start + _BLOCK_CHARS
            cut = max(text.rfind(" ", start + 1, limit), text.rfind("\n", start + 1, limit))
            if cut < 0:
                found = [at for at in (text.find(" ", limit), text.find("\n", limit)) if at >= 0]
                if not found:
                    break
                cut = min(found)
            blocks.append((start, cut))
            start = cut
        blocks.append((start, len(text)))
        return blocks
