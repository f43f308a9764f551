"""The quality gate of `reindex`: a worse model is refused, and a refusal leaves the live
version serving and the database's embeddings exactly as they were; a model at least as good
is switched to. Synthetic labelled queries (a BEIR-format folder written here)."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from index.settings import Settings
from ingest.embedder import Embedder
from ingest.embedder_hash import HashEmbedder
from service.beir import load_corpus
from service.engine import Groundwork
from service.quality_gate import GateRefused, GateUnusable, QualityGate

TOPICS = ["backup", "vacation", "laptop", "travel", "expense", "security", "payroll", "parking", "printer", "badge",
          "onboarding", "vpn"]
FILLER = ["policy", "team", "request", "office", "approval", "form", "manager", "process", "update", "rules"]


def write_beir(folder: Path, seed: int = 7) -> Path:
    """Twelve topics of six documents; each query names its topic and two details. The two
    documents holding both details are highly relevant, those holding one partly: the ranking
    within the topic is what a model gets right or wrong."""
    rng = random.Random(seed)
    (folder / "qrels").mkdir(parents=True)
    corpus, queries, qrels = [], [], []
    for t, topic in enumerate(TOPICS):
        details = [f"{topic}{w}" for w in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")]
        for d in range(6):
            words = [topic, topic] + rng.sample(FILLER, 4) + [details[d], details[(d + 1) % 6]]
            rng.shuffle(words)
            corpus.append({"_id": f"d{t}-{d}", "title": f"{topic} note {d}", "text": " ".join(words) + "."})
        for q, (a, b) in enumerate([(0, 1), (2, 3), (4, 5)]):
            qid = f"q{t}-{q}"
            queries.append({"_id": qid, "text": f"{topic} {details[a]} {details[b]}"})
            for d in range(6):
                held = {details[d], details[(d + 1) % 6]} & {details[a], details[b]}
                if held:
                    qrels.append((qid, f"d{t}-{d}", 2 if len(held) == 2 else 1))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
    return folder


PARAPHRASES = [  # (document, a query sharing no content word with it): only meaning connects them
    ("Employees receive twenty-five vacation days each calendar year.", "how much paid time off do workers get annually"),
    ("The nightly backup of the file servers starts at one in the morning.", "when are data copies of storage machines made"),
    ("Lost badges must be reported to reception so the card can be blocked.", "what if I misplaced my building access pass"),
    ("Expense claims are reimbursed within ten working days after approval.", "how long until I get my money back for business costs"),
    ("Laptops are replaced every three years by the IT department.", "how often do we get a new notebook computer"),
    ("Connect to the corporate VPN before opening internal websites from home.", "accessing the intranet while working remotely"),
    ("The printer on the second floor jams when loaded with thick paper.", "why does the copier upstairs keep getting stuck"),
    ("Parking spaces in the garage are assigned by seniority.", "who gets a spot for their car in the lot"),
    ("Salaries are paid on the last business day of the month.", "what date does payroll hit my bank account"),
    ("Flights longer than six hours may be booked in business class.", "can I fly premium cabin on long trips"),
    ("New hires meet their mentor during the first week.", "who guides recent recruits when they join"),
    ("Passwords must be changed every ninety days and contain a symbol.", "how frequently should I update my login secret"),
]


def write_paraphrase_beir(folder: Path) -> Path:
    """Queries a trained model answers and a lexical match cannot, among unrelated notes."""
    (folder / "qrels").mkdir(parents=True)
    corpus = [{"_id": f"p{i}", "title": "", "text": doc} for i, (doc, _query) in enumerate(PARAPHRASES)]
    corpus += [{"_id": f"n{n}", "title": "", "text": f"Meeting room {n} in building {n % 4} seats {4 + n % 9} people and has a whiteboard."}
               for n in range(40)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": q}) + "\n" for i, (_d, q) in enumerate(PARAPHRASES)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tp{i}\t1\n" for i in range(len(PARAPHRASES))))
    return folder


class NoiseEmbedder(Embedder):
    """A model that learnt nothing: each text gets a vector from its own hash, unrelated to its
    meaning (the numbers of a randomly initialised network, without the network)."""

    device = "cpu"

    def __init__(self, dimension: int = 384):
        self.model_name, self.dimension, self.max_seq_length = "noise-embedder", dimension, 256
        self.fingerprint = hashlib.sha256(b"noise-embedder-v1").hexdigest()

    def tokenizer_path(self):
        return None

    def embed_documents(self, texts):
        out = np.stack([np.random.default_rng(int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")).standard_normal(self.dimension)
                        for t in texts]).astype(np.float32) if texts else np.zeros((0, self.dimension), np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(1e-12)

    embed_queries = embed_documents


def _settings(root: Path, **overrides) -> Settings:
    return Settings(**({"data_dir": root, "reranker_enabled": False, "chunk_max_tokens": 60} | overrides))


def database_embeddings(groundwork: Groundwork) -> tuple[str, dict[str, int]]:
    """A digest of every stored vector, and the documents per model fingerprint."""
    digest = hashlib.sha256()
    with groundwork.engine.connect() as connection:
        for chunk_id, blob in connection.execute(text("SELECT id, embedding FROM chunk ORDER BY id")):
            digest.update(str(chunk_id).encode() + b":" + (blob or b""))
    return digest.hexdigest(), groundwork.store.fingerprints()


@pytest.fixture
def labelled(tmp_path, hash_embedder):
    """A data directory whose live version was built with the hash embedder over the
    synthetic corpus, and the BEIR folder of its labelled queries."""
    folder = write_beir(tmp_path / "labelled")
    settings = _settings(tmp_path / "data")
    groundwork = Groundwork(settings, embedder=hash_embedder)
    try:
        load_corpus(groundwork, folder / "corpus.jsonl", f"beir-{folder.name}")
        groundwork.refresh_indexes()
    finally:
        groundwork.close()
    return settings, folder


def test_a_worse_model_is_refused_and_nothing_changes(labelled, hash_embedder):
    settings, folder = labelled
    groundwork = Groundwork(settings, embedder=NoiseEmbedder())  # the newly configured model
    try:
        before = database_embeddings(groundwork)
        with pytest.raises(GateRefused) as refused:
            groundwork.reindex_gated(QualityGate(folder), reembed=True, live_embedder=hash_embedder)
        gate = refused.value.gate
        assert gate["passed"] is False and gate["queries"] == 36
        assert gate["live_ndcg"] - gate["new_ndcg"] > 0.01 and gate["live_model"] == "hash-embedder"
        assert "REFUSED" in str(refused.value)
        assert database_embeddings(groundwork) == before  # not one vector written
        assert groundwork.indexes.version == 1 and json.loads((settings.data_dir / "indexes" / "CURRENT.json").read_text())["version"] == 1
    finally:
        groundwork.close()
    again = Groundwork(settings, embedder=hash_embedder)  # the live version still serves, consistent
    try:
        report = again.verify()
        assert report["consistent"] and report["index_version"] == 1, report["problems"]
    finally:
        again.close()


def test_a_model_as_good_is_switched_to_and_its_embeddings_committed(labelled, hash_embedder):
    settings, folder = labelled
    twin = HashEmbedder(model_name="hash-embedder-twin")  # other numbers, the same skill
    groundwork = Groundwork(settings, embedder=twin)
    try:
        before = database_embeddings(groundwork)
        result = groundwork.reindex_gated(QualityGate(folder, max_drop=0.05), reembed=True, live_embedder=hash_embedder)
        assert result.gate["passed"] and result.version == 2
        assert abs(result.gate["new_ndcg"] - result.gate["live_ndcg"]) <= 0.05
        digest, fingerprints = database_embeddings(groundwork)
        assert digest != before[0] and set(fingerprints) == {twin.fingerprint}
        report = groundwork.verify()
        assert report["consistent"] and report["index_version"] == 2, report["problems"]
    finally:
        groundwork.close()


def test_same_model_without_reembed_passes_with_no_change(labelled, hash_embedder):
    settings, folder = labelled
    groundwork = Groundwork(settings, embedder=hash_embedder)
    try:
        result = groundwork.reindex_gated(QualityGate(folder, max_drop=0.0))
        assert result.gate["drop"] == 0 and result.gate["passed"] and result.version == 2
    finally:
        groundwork.close()


def test_an_unusable_gate_refuses_before_any_work(labelled, hash_embedder, tmp_path):
    settings, folder = labelled
    groundwork = Groundwork(settings, embedder=NoiseEmbedder())
    try:
        with pytest.raises(GateUnusable, match="qrels"):
            groundwork.reindex_gated(QualityGate(tmp_path / "nowhere"), reembed=True)
        other = write_beir(tmp_path / "never-loaded")
        with pytest.raises(GateUnusable, match="groundwork eval --beir"):
            groundwork.reindex_gated(QualityGate(other), reembed=True)
        with pytest.raises(GateUnusable, match="split"):
            groundwork.reindex_gated(QualityGate(folder, split="dev"), reembed=True)
        with pytest.raises(GateUnusable, match=">= 0"):
            groundwork.reindex_gated(QualityGate(folder, max_drop=-0.1), reembed=True)
        assert groundwork._embedder.__class__ is NoiseEmbedder and groundwork._indexes is None  # nothing was opened
    finally:
        groundwork.close()


def randomly_initialised_copy(target: Path) -> Path:
    """The default model's architecture and tokenizer with untrained weights, made offline
    from its packaged config: the deliberately worse model a gate must refuse."""
    import shutil

    import torch
    from transformers import AutoConfig, AutoModel

    from ingest.runtime.resolve import resolve_model

    source = resolve_model(Settings().embedding_model)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "README.md"))
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(source)).save_pretrained(target)
    return target


@pytest.mark.slow
def test_cli_refuses_a_randomly_initialised_model(tmp_path, capsys, monkeypatch):
    """The real default model builds the live version; `reindex --reembed --gate` with a
    randomly initialised copy configured prints both figures, exits 1, and leaves the live
    version and every stored vector as they were."""
    from service.cli import EXIT_OK, EXIT_PROBLEM, main

    folder = write_paraphrase_beir(tmp_path / "labelled")
    data = ["--data-dir", str(tmp_path / "data")]
    monkeypatch.setenv("GROUNDWORK_EMBEDDING_BACKEND", "torch")  # no export of the throwaway model into the cache
    monkeypatch.setenv("GROUNDWORK_RERANKER_ENABLED", "false")
    assert main([*data, "eval", "--beir", str(folder), "--modes", "hybrid", "--json"]) == EXIT_OK
    live_ndcg = json.loads(capsys.readouterr().out)["modes"]["hybrid"]["ndcg@10"]
    assert live_ndcg > 0.5
    settings = _settings(tmp_path / "data")
    probe = Groundwork(settings, embedder=NoiseEmbedder())
    before = database_embeddings(probe)
    probe.close()

    monkeypatch.setenv("GROUNDWORK_EMBEDDING_MODEL", str(randomly_initialised_copy(tmp_path / "random-minilm")))
    code = main([*data, "reindex", "--reembed", "--gate", str(folder), "--max-drop", "0.01"])
    out = capsys.readouterr().out
    assert code == EXIT_PROBLEM, out
    assert "REFUSED" in out and f"live {live_ndcg:.4f} (all-MiniLM-L6-v2)" in out and "random-minilm" in out
    assert "kept index version 1" in out
    probe = Groundwork(settings, embedder=NoiseEmbedder())
    try:
        assert database_embeddings(probe) == before
        assert json.loads((settings.data_dir / "indexes" / "CURRENT.json").read_text())["version"] == 1
    finally:
        probe.close()


def test_http_reindex_route_with_a_gate(fresh):
    import time

    server = fresh()
    share = server.root / "share"
    folder = write_beir(share / "labelled")
    load_corpus(server.groundwork, folder / "corpus.jsonl", "beir-labelled")
    with server.client(server.keys["admin"]) as admin:
        assert admin.post("/v1/reindex", json={"gate": str(server.root / "elsewhere")}).status_code == 403  # outside the ingest roots
        unusable = admin.post("/v1/reindex", json={"gate": str(folder), "split": "dev"})
        assert unusable.status_code == 400 and unusable.json()["error"]["code"] == "gate_unusable"
        assert admin.post("/v1/reindex", json={"max_drop": 0.1}).status_code == 400
        started = admin.post("/v1/reindex", json={"gate": str(folder), "max_drop": 0})
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + 60
        while (status := admin.get("/v1/reindex").json())["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert status["error"] is None and status["version"] == 2, status
    gate = status["gate"]
    assert gate["passed"] and gate["queries"] == 36 and gate["live_ndcg"] == gate["new_ndcg"]
