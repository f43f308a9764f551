"""The committed sample corpus is complete, readable, and in step with its generator.

Every check that reads a generated format runs against both the committed file and a fresh
regeneration, so an edit to the generator that is not followed by a re-run shows up here.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_email_policy
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "data" / "samples"
GENERATOR_PATH = REPO_ROOT / "scripts" / "make_samples.py"


def _documents(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.name != "README.md"]


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def generator() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("make_samples", GENERATOR_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def regenerated_dir(generator: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    generator.generate(out)
    return out


@pytest.fixture(params=["committed", "regenerated"])
def sample_dir(request: pytest.FixtureRequest) -> Path:
    return SAMPLES_DIR if request.param == "committed" else request.getfixturevalue("regenerated_dir")


def test_corpus_has_seven_documents_in_six_formats() -> None:
    documents = _documents(SAMPLES_DIR)
    assert len(documents) >= 7
    assert len({p.suffix.lower() for p in documents}) >= 6
    assert (SAMPLES_DIR / "README.md").is_file()


def test_corpus_stays_small() -> None:
    assert sum(p.stat().st_size for p in _documents(SAMPLES_DIR)) < 1_000_000


def test_regeneration_writes_the_committed_file_names(
    generator: ModuleType, regenerated_dir: Path
) -> None:
    regenerated = {p.name for p in _documents(regenerated_dir)}
    assert regenerated == set(generator.BUILDERS)
    assert regenerated <= {p.name for p in _documents(SAMPLES_DIR)}


def test_hr_policy_pdf(sample_dir: Path) -> None:
    from pypdf import PdfReader

    reader = PdfReader(sample_dir / "hr-policy.pdf")
    text = _flat("\n".join(page.extract_text() for page in reader.pages))
    assert 2 <= len(reader.pages) <= 3
    assert reader.metadata.title == "Northwind Labs People Policy: Leave, Remote Work and Expenses"
    assert "Employees accrue 25 days of paid annual leave" in text
    assert "20 weeks of parental leave" in text


def test_meeting_notes_docx(sample_dir: Path) -> None:
    from docx import Document

    document = Document(str(sample_dir / "eng-leadership-meeting-2025-10-08.docx"))
    text = "\n".join(p.text for p in document.paragraphs)
    assert document.core_properties.title == "Engineering Leadership Meeting - 8 October 2025"
    assert "Lukas Brandt owns the billing service migration" in text
    assert "15 December 2025 to 5 January 2026" in text
    assert any(p.style.name == "List Bullet" for p in document.paragraphs)


def test_quarterly_figures_xlsx(sample_dir: Path) -> None:
    from openpyxl import load_workbook

    workbook = load_workbook(sample_dir / "quarterly-figures-2025.xlsx", read_only=True)
    assert workbook.sheetnames == ["Regional results", "Headcount"]
    rows = list(workbook["Regional results"].iter_rows(values_only=True))
    assert rows[0] == ("Region", "Quarter", "Revenue (EUR)", "New customers", "Churn (%)")
    assert 8 <= len(rows) - 1 <= 12
    assert ("EMEA", "Q3 2025", 4_935_000, 47, 1.7) in rows
    assert workbook.properties.title == "Northwind Labs Quarterly Figures 2025"
    workbook.close()


def test_vendor_thread_eml(sample_dir: Path) -> None:
    raw = (sample_dir / "vendor-renewal-brightline.eml").read_bytes()
    message = message_from_bytes(raw, policy=default_email_policy)
    body = message.get_content()
    assert message["Subject"] == "Re: Brightline Metrics renewal - decision"
    assert message["From"].addresses[0].display_name == "Priya Raman"
    assert message["Date"].datetime.isoformat() == "2025-10-16T17:05:00+02:00"
    assert "we renew Brightline Metrics for two years" in _flat(body)
    assert "\n> " in body and "\n>> " in body
    assert max(len(line) for line in raw.decode("ascii").splitlines()) <= 78


def test_roadmap_pptx(sample_dir: Path) -> None:
    from pptx import Presentation

    deck = Presentation(str(sample_dir / "product-roadmap-2026.pptx"))
    texts = [shape.text_frame.text for slide in deck.slides for shape in slide.shapes
             if shape.has_text_frame]
    assert 5 <= len(deck.slides) <= 6
    assert deck.core_properties.title == "Northwind Relay Product Roadmap 2026"
    assert any("Relay v1 API retired on 30 June 2026" in text for text in texts)


def test_hand_written_samples_hold_their_facts() -> None:
    runbook = (SAMPLES_DIR / "it-runbook.md").read_text(encoding="utf-8")
    faq = (SAMPLES_DIR / "product-faq.html").read_text(encoding="utf-8")
    assert runbook.startswith("# ") and "## Rotating the VPN certificate" in runbook
    assert "```bash" in runbook and "recovery time objective (RTO)" in runbook
    assert "<title>Northwind Relay - Frequently Asked Questions</title>" in faq
    assert "14-day free trial" in faq


def test_generation_is_repeatable(generator: ModuleType, regenerated_dir: Path, tmp_path: Path) -> None:
    """Fixed dates and zip timestamps make a second run byte-identical to the first."""
    generator.generate(tmp_path)
    for name in generator.BUILDERS:
        assert (tmp_path / name).read_bytes() == (regenerated_dir / name).read_bytes(), name
