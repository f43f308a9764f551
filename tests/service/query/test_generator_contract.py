"""One contract for every Generator, plus the HTTP behaviour of the OpenAI-compatible one.

The OpenAI-compatible generator talks real HTTP to a local server started here. Only the
model behind it is fake: a few lines that answer with the source sentence sharing the most
words with the question, or with the refusal sentence.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.settings import Settings
from service.query.citations import find_markers, is_refusal
from service.query.generation import (
    REFUSAL,
    ExtractiveGenerator,
    Generator,
    GeneratorUnavailable,
    answer_with_fallback,
    make_generator,
    stream_with_fallback,
)
from service.query.generation.openai_compat import OpenAICompatGenerator
from service.query.types import Answer, Hit

PASSAGES_TEXT = [
    ("hr-policy.pdf", "People Policy", ["Leave", "Annual leave"],
     "Employees accrue 25 days of paid annual leave per calendar year. Up to 5 unused days may be "
     "carried over into the next calendar year.\nCarried-over days must be taken by 31 March."),
    ("hr-policy.pdf", "People Policy", ["Travel and expenses"],
     "Hotels are reimbursed up to EUR 180 per night. Meals while travelling are reimbursed up to "
     "EUR 60 per day, including tips. Alcohol is not reimbursed."),
    ("it-runbook.md", "Infrastructure Runbook", ["Rotating the VPN certificate"],
     "The VPN server certificate is issued by the internal certificate authority and is valid "
     "for 90 days. Rotate it at least 14 days before it expires. A rotation takes about 30 "
     "minutes."),
    ("product-faq.html", "Relay FAQ", ["Is there a free trial?"],
     "Every new workspace gets a 14-day free trial of the Business plan. No credit card is needed "
     "to start it."),
    ("it-runbook.md", "Infrastructure Runbook", ["Database failover"],
     "The recovery time objective for the orders database is 15 minutes. Patroni promotes a "
     "replica automatically when the leader fails to renew its lock for 30 seconds."),
    ("meeting-notes.docx", "Engineering Leadership Meeting", ["Decisions"],
     "- Decision: the year-end code freeze runs from 15 December 2025 to 5 January 2026.\n"
     "- Decision: hire 2 site reliability engineers in Q1 2026."),
    ("facilities.md", "Office Guide", ["Meeting rooms"],
     "The Fjord meeting room seats 12 people and has a video conferencing system."),
]

ANSWERABLE = [
    ("How many days of annual leave do employees get?", "25 days"),
    ("How long is the VPN certificate valid?", "90 days"),
    ("When does the year-end code freeze start?", "15 December 2025"),
    ("How much are hotels reimbursed per night?", "EUR 180"),
]
UNRELATED = ["What is the capital of Mongolia?", "How do I bake sourdough bread?"]
OUTSIDE_CONTEXT = "How many people does the Fjord meeting room seat?"  # only passage 7 knows
CONTEXT_CHUNKS = 6


def make_hits(texts=PASSAGES_TEXT) -> list[Hit]:
    return [
        Hit(chunk_id=100 + i, document_id=10 + i, score=1.0 - i / 10, text=text, source=source,
            title=title, pages=[i + 1], heading_path=list(headings), collection="default")
        for i, (source, title, headings, text) in enumerate(texts)
    ]


# --------------------------------------------------------------------------------------------
# The fake model endpoint
# --------------------------------------------------------------------------------------------

_SOURCE_BLOCK = re.compile(r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>', re.DOTALL)
_QUESTION = re.compile(r"^Question: (.*)$", re.MULTILINE)
_STOP = {"the", "a", "an", "of", "is", "are", "do", "does", "how", "what", "when", "many", "long",
         "for", "to", "in", "i", "get", "per"}


def _word_set(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP}


def fake_model_reply(messages: list[dict]) -> str:
    """Answers with the source sentence sharing most words with the question, cited."""
    user = messages[-1]["content"]
    question = _word_set(_QUESTION.search(user).group(1))
    best, best_overlap = None, 1
    for number, body in _SOURCE_BLOCK.findall(user):
        for sentence in re.split(r"(?<=[.!?])\s+", body):
            overlap = len(question & _word_set(sentence))
            if overlap > best_overlap:
                best, best_overlap = f"{sentence.lstrip('- ').strip()} [{number}]", overlap
    return best or REFUSAL


class FakeModelServer:
    """A real HTTP server on 127.0.0.1 speaking the chat-completions protocol.

    ``script`` queues per-request behaviour: ``("status", code, headers)``, ``("reply", text)``,
    ``("sleep", seconds)``, ``("error_after", text)`` (stream text, then an error event) or
    ``("garbage",)``; with nothing queued the fake model answers.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: deque[tuple] = deque()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                action = fake.script.popleft() if fake.script else ("model",)
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": "no such route"}})
                if action[0] == "status":
                    return self._json(action[1], {"error": {"message": f"fake status {action[1]}"}}, action[2])
                if action[0] == "sleep":
                    time.sleep(action[1])
                if action[0] == "garbage":
                    return self._raw(200, b"this is not json", "application/json")
                text = action[1] if action[0] in ("reply", "error_after") else fake_model_reply(body["messages"])
                if body.get("stream"):
                    return self._stream(text, error=action[0] == "error_after")
                return self._json(200, {"id": "cmpl-1", "object": "chat.completion", "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})

            def _raw(self, status: int, data: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
                self._raw(status, json.dumps(payload).encode(), "application/json", headers)

            def _stream(self, text: str, error: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b": keep-alive\n\n")
                for start in range(0, len(text), 3):  # small pieces split words and markers
                    chunk = {"choices": [{"index": 0, "delta": {"content": text[start:start + 3]}}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                if error:
                    self.wfile.write(b'data: {"error": {"message": "model overloaded"}}\n\n')
                    return
                self.wfile.write(b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n')
                self.wfile.write(b"data: [DONE]\n\n")

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # clients that time out on purpose leave broken pipes behind

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        self.requests.clear()
        self.script.clear()


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as server:
        yield server


@pytest.fixture
def server(fake_server: FakeModelServer) -> FakeModelServer:
    fake_server.reset()
    return fake_server


@pytest.fixture
def delays() -> list[float]:
    return []


def openai_generator(base_url: str, delays: list[float], **kwargs) -> OpenAICompatGenerator:
    options = {"api_key": "test-key", "context_chunks": CONTEXT_CHUNKS, "max_retries": 2, "timeout_s": 5.0}
    options.update(kwargs)
    return OpenAICompatGenerator(base_url, "fake-model", sleep=delays.append, **options)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --------------------------------------------------------------------------------------------
# The shared contract
# --------------------------------------------------------------------------------------------

@pytest.fixture(params=["extractive", "openai"])
def generator(request, server: FakeModelServer, delays: list[float]) -> Iterator[Generator]:
    if request.param == "extractive":
        yield ExtractiveGenerator(context_chunks=CONTEXT_CHUNKS)
    else:
        generator = openai_generator(server.base_url, delays)
        yield generator
        generator.close()


def collect(stream) -> tuple[list[str], Answer]:
    items = list(stream)
    assert items and isinstance(items[-1], Answer)
    assert sum(isinstance(item, Answer) for item in items) == 1
    deltas = items[:-1]
    assert all(isinstance(delta, str) and delta for delta in deltas)
    return deltas, items[-1]


def assert_checkable(answer: Answer, passages: list[Hit]) -> None:
    cited_numbers = {n for _, _, numbers in find_markers(answer.text) for n in numbers}
    context = passages[:CONTEXT_CHUNKS]
    for citation in answer.citations:
        assert 1 <= citation.marker <= len(context)
        hit = context[citation.marker - 1]
        assert (citation.chunk_id, citation.document_id, citation.source) == (hit.chunk_id, hit.document_id, hit.source)
        assert hit.text[citation.start:citation.end] == citation.quote
        assert citation.quote.strip() == citation.quote and citation.quote
        assert 0.0 <= citation.support <= 1.0
        assert citation.marker in cited_numbers
    assert cited_numbers <= set(range(1, len(context) + 1))


def test_is_a_generator(generator: Generator) -> None:
    assert isinstance(generator, Generator)
    assert isinstance(generator.name, str) and generator.name


@pytest.mark.parametrize(("question", "expected"), ANSWERABLE)
def test_answers_with_checkable_citations(generator: Generator, question: str, expected: str) -> None:
    passages = make_hits()
    answer = generator.answer(question, passages)
    assert answer.grounded, answer
    assert expected in answer.text
    assert answer.citations
    assert answer.generator == generator.name
    assert any(expected in c.quote for c in answer.citations)
    assert_checkable(answer, passages)


@pytest.mark.parametrize("question", UNRELATED)
def test_refuses_an_unrelated_question(generator: Generator, question: str) -> None:
    answer = generator.answer(question, make_hits())
    assert not answer.grounded
    assert answer.citations == []
    assert answer.text == REFUSAL and is_refusal(answer.text)


def test_refuses_without_passages(generator: Generator) -> None:
    answer = generator.answer(ANSWERABLE[0][0], [])
    assert (answer.grounded, answer.citations, answer.text) == (False, [], REFUSAL)
    deltas, final = collect(generator.stream(ANSWERABLE[0][0], []))
    assert "".join(deltas) == final.text == REFUSAL


def test_uses_only_the_context_window(generator: Generator) -> None:
    passages = make_hits()
    answer = generator.answer(OUTSIDE_CONTEXT, passages)
    assert not answer.grounded and answer.citations == []
    assert "12 people" not in answer.text


@pytest.mark.parametrize("question", [ANSWERABLE[0][0], ANSWERABLE[2][0], UNRELATED[0]])
def test_stream_ends_with_the_answer_it_streamed(generator: Generator, question: str) -> None:
    passages = make_hits()
    deltas, final = collect(generator.stream(question, passages))
    assert "".join(deltas) == final.text
    whole = generator.answer(question, passages)
    assert (final.text, final.grounded, final.citations) == (whole.text, whole.grounded, whole.citations)
    assert_checkable(final, passages)


def test_is_deterministic(generator: Generator) -> None:
    passages = make_hits()
    first = generator.answer(ANSWERABLE[1][0], passages)
    second = generator.answer(ANSWERABLE[1][0], passages)
    assert first == second


def test_passage_order_defines_markers(generator: Generator) -> None:
    passages = make_hits()
    reordered = [passages[2], passages[0], passages[1], *passages[3:]]
    answer = generator.answer("How long is the VPN certificate valid?", reordered)
    assert answer.grounded
    assert {c.marker for c in answer.citations} == {1}
    assert answer.citations[0].chunk_id == passages[2].chunk_id


# --------------------------------------------------------------------------------------------
# Extractive specifics
# --------------------------------------------------------------------------------------------

_piece = st.sampled_from(["Leave", "is", "25", "days", "annual", "leave.", "e.g.", "Hotels", "\n", "\n\n", "- ",
                          "| ", "EUR", "1.", "night?", "J.", "cost", "  ", "[1]", ">", "\u2019s", "!"])
_passage_text = st.lists(_piece, max_size=40).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(_passage_text, min_size=0, max_size=8), st.sampled_from([q for q, _ in ANSWERABLE] + UNRELATED))
def test_extractive_citations_always_check_out(texts: list[str], question: str) -> None:
    passages = make_hits([("doc.md", "Doc", [], text) for text in texts])
    generator = ExtractiveGenerator(context_chunks=CONTEXT_CHUNKS)
    deltas, answer = collect(generator.stream(question, passages))
    assert "".join(deltas) == answer.text
    assert answer == generator.answer(question, passages)
    assert answer.grounded == bool(answer.citations)
    assert len(answer.citations) <= generator.max_sentences
    assert all(c.support >= generator.min_support for c in answer.citations)
    assert [n for _, _, numbers in find_markers(answer.text) for n in numbers] == [c.marker for c in answer.citations]
    assert_checkable(answer, passages)


def test_extractive_respects_sentence_limit_and_threshold() -> None:
    passages = make_hits()
    one = ExtractiveGenerator(max_sentences=1).answer(ANSWERABLE[0][0], passages)
    assert len(one.citations) == 1 and one.text.count("[") == 1
    strict = ExtractiveGenerator(min_support=1.01).answer(ANSWERABLE[0][0], passages)
    assert not strict.grounded


def test_extractive_skips_near_duplicates_from_overlapping_chunks() -> None:
    passages = make_hits()
    duplicate = make_hits([PASSAGES_TEXT[0]])[0]
    duplicate.chunk_id = 999
    answer = ExtractiveGenerator(context_chunks=8).answer(ANSWERABLE[0][0], [passages[0], duplicate, *passages[1:]])
    quotes = [c.quote for c in answer.citations]
    assert len(quotes) == len(set(quotes))


def test_extractive_embedding_scores_blend_and_fall_back() -> None:
    import numpy as np

    passages = make_hits()

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, float(len(t) % 7)] for t in texts])

    blended = ExtractiveGenerator(embed=embed).answer(ANSWERABLE[0][0], passages)
    assert blended.grounded and "25 days" in blended.text

    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("no model")

    fallback = ExtractiveGenerator(embed=broken).answer(ANSWERABLE[0][0], passages)
    lexical = ExtractiveGenerator().answer(ANSWERABLE[0][0], passages)
    assert fallback.text == lexical.text
    assert any("scored lexically" in note for note in fallback.notes)


def test_make_generator_from_settings() -> None:
    settings = Settings(generator="extractive", answer_max_sentences=2, context_chunks=3)
    generator = make_generator(settings)
    assert isinstance(generator, ExtractiveGenerator)
    assert (generator.max_sentences, generator.context_chunks) == (2, 3)
    with pytest.raises(GeneratorUnavailable, match="openai_base_url"):
        make_generator(Settings(generator="openai", openai_base_url=None, openai_model=None))


# --------------------------------------------------------------------------------------------
# OpenAI-compatible specifics
# --------------------------------------------------------------------------------------------

def test_openai_request_shape(server: FakeModelServer, delays: list[float]) -> None:
    generator = openai_generator(server.base_url, delays, max_sentences=3)
    generator.answer(ANSWERABLE[0][0], make_hits())
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer test-key"
    body = request["body"]
    assert (body["model"], body["temperature"], body["stream"]) == ("fake-model", 0, False)
    system, user = body["messages"]
    assert system["role"] == "system" and REFUSAL in system["content"] and "at most 3 sentences" in system["content"]
    assert user["role"] == "user" and user["content"].count("<source id=") == CONTEXT_CHUNKS


@pytest.mark.parametrize("streaming", [False, True])
def test_openai_drops_markers_outside_the_context(server: FakeModelServer, delays: list[float], streaming: bool) -> None:
    server.script.append(("reply", "Employees accrue 25 days of paid annual leave [1][9]. Hotels cost up to EUR 180 [2, 17]."))
    generator = openai_generator(server.base_url, delays)
    passages = make_hits()
    if streaming:
        deltas, answer = collect(generator.stream(ANSWERABLE[0][0], passages))
        assert "".join(deltas) == answer.text
    else:
        answer = generator.answer(ANSWERABLE[0][0], passages)
    assert answer.text == "Employees accrue 25 days of paid annual leave [1]. Hotels cost up to EUR 180 [2]."
    assert answer.dropped_citations == [{"marker": 9, "reason": "not in context"},
                                        {"marker": 17, "reason": "not in context"}]
    assert {c.marker for c in answer.citations} == {1, 2}
    assert "25 days" in next(c.quote for c in answer.citations if c.marker == 1)
    assert_checkable(answer, passages)


def test_openai_stream_and_answer_agree_on_untidy_text(server: FakeModelServer, delays: list[float]) -> None:
    raw = "\n  [9] Employees accrue 25 days of paid annual leave [1].\n\nHotels: EUR 180 per night [2] \n"
    server.script.extend([("reply", raw), ("reply", raw)])
    generator = openai_generator(server.base_url, delays)
    whole = generator.answer(ANSWERABLE[0][0], make_hits())
    deltas, streamed = collect(generator.stream(ANSWERABLE[0][0], make_hits()))
    expected = "Employees accrue 25 days of paid annual leave [1].\n\nHotels: EUR 180 per night [2]"
    assert "".join(deltas) == streamed.text == whole.text == expected
    assert streamed.citations == whole.citations and len(whole.citations) == 2


def test_openai_model_refusal_is_not_grounded(server: FakeModelServer, delays: list[float]) -> None:
    server.script.append(("reply", "the knowledge base does not contain an answer to this question"))
    answer = openai_generator(server.base_url, delays).answer(UNRELATED[0], make_hits())
    assert not answer.grounded and answer.citations == []


def test_openai_uncited_answer_is_flagged(server: FakeModelServer, delays: list[float]) -> None:
    server.script.append(("reply", "Employees get 25 days of leave."))
    answer = openai_generator(server.base_url, delays).answer(ANSWERABLE[0][0], make_hits())
    assert answer.citations == [] and "the answer cites no sources" in answer.notes


def test_openai_retries_5xx_and_429_with_backoff(server: FakeModelServer, delays: list[float]) -> None:
    server.script.extend([("status", 503, {}), ("status", 429, {"Retry-After": "0"})])
    answer = openai_generator(server.base_url, delays, backoff_s=0.25).answer(ANSWERABLE[0][0], make_hits())
    assert answer.grounded and "25 days" in answer.text
    assert len(server.requests) == 3
    assert delays == [0.25, 0.0]  # exponential backoff, then the server's Retry-After


def test_openai_gives_up_after_max_retries(server: FakeModelServer, delays: list[float]) -> None:
    server.script.extend([("status", 502, {})] * 3)
    generator = openai_generator(server.base_url, delays, max_retries=2)
    with pytest.raises(GeneratorUnavailable, match=r"HTTP 502.*3 attempts"):
        generator.answer(ANSWERABLE[0][0], make_hits())
    assert len(server.requests) == 3 and delays == [0.5, 1.0]


def test_openai_client_errors_are_not_retried(server: FakeModelServer, delays: list[float]) -> None:
    server.script.append(("status", 401, {}))
    with pytest.raises(GeneratorUnavailable, match="HTTP 401: fake status 401") as raised:
        openai_generator(server.base_url, delays).answer(ANSWERABLE[0][0], make_hits())
    assert "test-key" not in str(raised.value)
    assert len(server.requests) == 1 and delays == []


def test_openai_connection_refused(delays: list[float]) -> None:
    generator = openai_generator(closed_port_url(), delays, max_retries=1)
    with pytest.raises(GeneratorUnavailable, match="cannot reach the model endpoint"):
        generator.answer(ANSWERABLE[0][0], make_hits())
    assert delays == [0.5]
    with pytest.raises(GeneratorUnavailable):
        next(iter(generator.stream(ANSWERABLE[0][0], make_hits())))


def test_openai_read_timeout(server: FakeModelServer, delays: list[float]) -> None:
    server.script.append(("sleep", 2.0))
    generator = openai_generator(server.base_url, delays, timeout_s=0.3)
    with pytest.raises(GeneratorUnavailable, match="did not answer within"):
        generator.answer(ANSWERABLE[0][0], make_hits())


def test_openai_unreadable_response(server: FakeModelServer, delays: list[float]) -> None:
    server.script.append(("garbage",))
    with pytest.raises(GeneratorUnavailable, match="unreadable"):
        openai_generator(server.base_url, delays).answer(ANSWERABLE[0][0], make_hits())


def test_openai_stream_interrupted_midway_keeps_what_was_said(server: FakeModelServer, delays: list[float]) -> None:
    server.script.append(("error_after", "Employees accrue 25 days of paid annual leave [1]."))
    deltas, answer = collect(openai_generator(server.base_url, delays).stream(ANSWERABLE[0][0], make_hits()))
    assert "".join(deltas) == answer.text == "Employees accrue 25 days of paid annual leave [1]."
    assert answer.citations and any("interrupted" in note for note in answer.notes)


def test_fallback_to_extractive_when_the_endpoint_is_down(delays: list[float]) -> None:
    primary = openai_generator(closed_port_url(), delays, max_retries=0)
    fallback = ExtractiveGenerator(context_chunks=CONTEXT_CHUNKS)
    passages = make_hits()
    answer = answer_with_fallback(primary, fallback, ANSWERABLE[0][0], passages)
    assert answer.generator == "extractive" and "25 days" in answer.text
    assert "openai generator is unavailable" in answer.notes[0]
    deltas, streamed = collect(stream_with_fallback(primary, fallback, ANSWERABLE[0][0], passages))
    assert "".join(deltas) == streamed.text == answer.text
    assert "openai generator is unavailable" in streamed.notes[0]


def test_fallback_is_not_used_when_the_primary_works(server: FakeModelServer, delays: list[float]) -> None:
    primary = openai_generator(server.base_url, delays)
    deltas, answer = collect(stream_with_fallback(primary, ExtractiveGenerator(), ANSWERABLE[0][0], make_hits()))
    assert answer.generator == "openai" and "".join(deltas) == answer.text
