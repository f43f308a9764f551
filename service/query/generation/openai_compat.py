"""Answers from any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp, Ollama, ...).

Plain ``httpx`` rather than a vendor SDK: the wire format is small, and owning it keeps
retries, timeouts and error messages under the service's control. The model's text is never
trusted as is: markers that point outside the context are removed (also mid-stream), and every
remaining marker gets a quote located in the cited passage, with its support score.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import httpx

from index.settings import Settings
from service.query.citations import MarkerFilter, ground_answer
from service.query.generation.base import GeneratorUnavailable, refusal_answer
from service.query.injection import flagged_sources, source_note
from service.query.prompts import build_messages
from service.query.types import Answer, Hit

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 30.0
CONNECT_TIMEOUT_S = 10.0


def _error_detail(response: httpx.Response) -> str:
    """The server's own error message, short, for logs and notes."""
    try:
        body = response.read().decode("utf-8", "replace")
    except httpx.HTTPError:
        return ""
    try:
        error = json.loads(body).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    except (ValueError, AttributeError):
        pass
    return body.strip()[:300]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def parse_sse_line(line: str) -> str | None:
    """Text delta of one server-sent-events line; None at ``[DONE]``, "" for anything else."""
    if not line.startswith("data:"):
        return ""  # blank keep-alives, ": comments", "event:" lines
    data = line[len("data:"):].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError as error:
        raise GeneratorUnavailable(f"malformed stream chunk from the model endpoint: {data[:120]!r}") from error
    if isinstance(chunk, dict) and chunk.get("error"):
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise GeneratorUnavailable(f"the model endpoint reported an error mid-stream: {message}")
    try:
        choices = chunk.get("choices") or []
        if not choices:
            return ""  # e.g. a final usage-only chunk
        return choices[0].get("delta", {}).get("content") or ""
    except (AttributeError, TypeError) as error:
        raise GeneratorUnavailable(f"unexpected stream chunk from the model endpoint: {data[:120]!r}") from error


def parse_completion(body: object) -> str:
    try:
        content = body["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError) as error:
        raise GeneratorUnavailable("the model endpoint returned no completion text") from error
    return content or ""


class OpenAICompatGenerator:
    """Generator backed by ``POST {base_url}/chat/completions``; ``base_url`` includes ``/v1``."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        context_chunks: int = 6,
        max_sentences: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ):
        if not base_url or not model:
            raise GeneratorUnavailable("the openai generator needs openai_base_url and openai_model")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.max_retries = max(0, max_retries)
        self.context_chunks = context_chunks
        self.max_sentences = max_sentences
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S)),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs) -> OpenAICompatGenerator:
        return cls(
            settings.openai_base_url or "",
            settings.openai_model or "",
            settings.openai_api_key,
            timeout_s=settings.openai_timeout_s,
            max_retries=settings.openai_max_retries,
            context_chunks=settings.context_chunks,
            max_sentences=settings.answer_max_sentences,
            **kwargs,
        )

    def close(self) -> None:
        self._client.close()

    # --- HTTP ---------------------------------------------------------------------------

    def _payload(self, question: str, context: Sequence[Hit], stream: bool, addressed: Sequence[int] = ()) -> dict:
        return {
            "model": self.model,
            "messages": build_messages(question, context, max_sentences=self.max_sentences, addressed=addressed),
            "temperature": 0,
            "stream": stream,
        }

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return min(self.backoff_s * (2 ** attempt), self.max_backoff_s)

    def _send(self, payload: dict) -> httpx.Response:
        """POST with retries on connection failures, 429 and 5xx; the response is open
        (streamed) and must be closed by the caller."""
        attempts = self.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            retry_after = None
            try:
                request = self._client.build_request("POST", self.url, json=payload)
                response = self._client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as error:
                problem = f"cannot reach the model endpoint {self.url}: {error or type(error).__name__}"
            except httpx.TimeoutException as error:
                raise GeneratorUnavailable(
                    f"the model endpoint {self.url} did not answer within {self.timeout_s:g} s"
                ) from error
            except httpx.HTTPError as error:
                raise GeneratorUnavailable(f"request to the model endpoint {self.url} failed: {error}") from error
            else:
                if response.status_code < 400:
                    return response
                detail = _error_detail(response)
                response.close()
                problem = f"the model endpoint {self.url} returned HTTP {response.status_code}" + (
                    f": {detail}" if detail else ""
                )
                if response.status_code not in RETRY_STATUSES:
                    raise GeneratorUnavailable(problem)
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                delay = self._backoff(attempt, retry_after)
                log.warning("%s; retrying in %.1f s (attempt %d of %d)", problem, delay, attempt + 2, attempts)
                self._sleep(delay)
        raise GeneratorUnavailable(f"{problem} (gave up after {attempts} attempts)")

    def _complete(self, payload: dict) -> str:
        response = self._send(payload)
        try:
            body = json.loads(response.read())
        except (ValueError, httpx.HTTPError) as error:
            raise GeneratorUnavailable(f"the model endpoint returned an unreadable response: {error}") from error
        finally:
            response.close()
        return parse_completion(body)

    def _deltas(self, payload: dict) -> Iterator[str]:
        response = self._send(payload)
        try:
            for line in response.iter_lines():
                delta = parse_sse_line(line)
                if delta is None:
                    return
                if delta:
                    yield delta
        except httpx.TimeoutException as error:
            raise GeneratorUnavailable(f"the model endpoint stopped sending within {self.timeout_s:g} s") from error
        except httpx.HTTPError as error:
            raise GeneratorUnavailable(f"the stream from the model endpoint broke: {error}") from error
        finally:
            response.close()

    # --- Generator ----------------------------------------------------------------------

    def _final(self, text: str, context: Sequence[Hit], dropped: list[dict], notes: Sequence[str] = ()) -> Answer:
        grounding = ground_answer(text, context)
        return Answer(
            text=text,
            citations=grounding.citations,
            grounded=grounding.grounded,
            dropped_citations=dropped,
            generator=self.name,
            notes=[*notes, *grounding.notes],
        )

    def answer(self, question: str, passages: Sequence[Hit]) -> Answer:
        context = list(passages[: self.context_chunks])
        if not context:
            return refusal_answer(self.name, ["no passages were retrieved"])
        addressed = flagged_sources(context)
        raw = self._complete(self._payload(question, context, stream=False, addressed=addressed))
        marker_filter = MarkerFilter(len(context))
        text = (marker_filter.feed(raw) + marker_filter.finish()).strip()
        if not text:
            raise GeneratorUnavailable("the model returned an empty answer")
        return self._final(text, context, marker_filter.dropped, [source_note(addressed)] if addressed else [])

    def stream(self, question: str, passages: Sequence[Hit]) -> Iterator[str | Answer]:
        context = list(passages[: self.context_chunks])
        if not context:
            answer = refusal_answer(self.name, ["no passages were retrieved"])
            yield answer.text
            yield answer
            return
        marker_filter = MarkerFilter(len(context))
        emitted: list[str] = []
        addressed = flagged_sources(context)
        notes: list[str] = [source_note(addressed)] if addressed else []
        deltas = self._deltas(self._payload(question, context, stream=True, addressed=addressed))
        try:
            for delta in deltas:
                text = marker_filter.feed(delta)
                if not emitted:
                    text = text.lstrip()  # answer() strips the text; the filter holds trailing space
                if text:
                    emitted.append(text)
                    yield text
        except GeneratorUnavailable as error:
            if not emitted:
                raise
            notes.append(f"the {self.name} generator was interrupted ({error}); the answer may be incomplete")
        tail = marker_filter.finish().rstrip()
        if tail:
            emitted.append(tail)
            yield tail
        if not emitted:
            raise GeneratorUnavailable("the model returned an empty answer")
        yield self._final("".join(emitted), context, marker_filter.dropped, notes)
