"""Answer generation: turn a question and ranked passages into an answer with citations."""

from __future__ import annotations

from index.settings import Settings
from service.query.generation.base import (
    REFUSAL,
    Generator,
    GeneratorUnavailable,
    answer_with_fallback,
    refusal_answer,
    stream_with_fallback,
)
from service.query.generation.extractive import Embed, ExtractiveGenerator

__all__ = [
    "REFUSAL", "Embed", "ExtractiveGenerator", "Generator", "GeneratorUnavailable", "answer_with_fallback",
    "make_generator", "refusal_answer", "stream_with_fallback",
]


def make_generator(settings: Settings, embed: Embed | None = None) -> Generator:
    """The configured generator. Raises GeneratorUnavailable when ``openai`` is selected but
    not configured, so the caller can fall back to the extractive one and say why."""
    if settings.generator == "openai":
        from service.query.generation.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator.from_settings(settings)
    return ExtractiveGenerator.from_settings(settings, embed=embed)
