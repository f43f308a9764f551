"""The Generator protocol and what every implementation shares.

A generator turns a question and ranked passages into an :class:`Answer` whose citations can
be checked against the chunk text. Passage ``n`` of the context (1-based, in ranked order) is
cited as ``[n]`` by every implementation, so answers from different generators read alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

from index.errors import ModelUnavailable
from service.query.prompts import REFUSAL
from service.query.types import Answer, Hit

log = logging.getLogger(__name__)

__all__ = [
    "REFUSAL", "Generator", "GeneratorUnavailable", "refusal_answer", "answer_with_fallback",
    "stream_with_fallback",
]


class GeneratorUnavailable(ModelUnavailable, RuntimeError):
    """The generator cannot answer right now (endpoint down, misconfigured, bad response).

    Raised before any text is produced, so a caller can still answer with another generator.
    """


@runtime_checkable
class Generator(Protocol):
    name: str

    def answer(self, question: str, passages: Sequence[Hit]) -> Answer:
        """The whole answer at once."""
        ...

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str | Answer]:
        """Text deltas, then exactly one final Answer whose text is their concatenation.

        May raise GeneratorUnavailable only before the first delta; a failure after that ends
        the stream with an Answer for the text produced so far, with a note saying so.
        """
        ...


def refusal_answer(generator: str, notes: Sequence[str] = ()) -> Answer:
    return Answer(text=REFUSAL, citations=[], grounded=False, generator=generator, notes=list(notes))


def _fallback_note(primary: Generator, fallback: Generator, error: Exception) -> str:
    return f"the {primary.name} generator is unavailable ({error}); answered by the {fallback.name} generator"


def _fell_back(primary: Generator, error: Exception, on_fallback: Callable[[Exception], None] | None) -> None:
    log.warning("generator %s failed (%s: %s); answering with the fallback", primary.name, type(error).__name__, error)
    if on_fallback is not None:
        on_fallback(error)


def answer_with_fallback(
    primary: Generator, fallback: Generator, question: str, passages: Sequence[Hit],
    on_fallback: Callable[[Exception], None] | None = None,
) -> Answer:
    """Answer with ``primary``; if it fails, with ``fallback``, and say so in the notes.

    GeneratorUnavailable is the expected failure; any other error is treated the same way, so
    a broken generator degrades the answer instead of failing the request.
    """
    try:
        return primary.answer(question, passages)
    except Exception as error:
        _fell_back(primary, error, on_fallback)
        answer = fallback.answer(question, passages)
        answer.notes.insert(0, _fallback_note(primary, fallback, error))
        return answer


def stream_with_fallback(
    primary: Generator, fallback: Generator, question: str, passages: Sequence[Hit],
    on_fallback: Callable[[Exception], None] | None = None,
) -> Iterator[str | Answer]:
    """Stream from ``primary``, switching to ``fallback`` when it fails before its first delta."""
    try:
        stream = iter(primary.stream(question, passages))
        first = next(stream)
    except StopIteration:
        return
    except Exception as error:
        _fell_back(primary, error, on_fallback)
        for item in fallback.stream(question, passages):
            if isinstance(item, Answer):
                item.notes.insert(0, _fallback_note(primary, fallback, error))
            yield item
        return
    yield first
    if not isinstance(first, Answer):
        yield from stream
