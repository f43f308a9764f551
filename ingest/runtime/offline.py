"""The one place that keeps model libraries off the network.

Hugging Face libraries (huggingface_hub, transformers, sentence-transformers) download weights
when a name is not in the local cache, and unstructured pings an analytics endpoint when it is
imported. A self-hosted service must do neither: a model that is not installed has to be a
clear deployment error, not a download. Every entry point calls ``set_offline_environment``
before it imports any of those libraries.
"""

from __future__ import annotations

import os
import sys

# Read by the libraries when they are imported (and by huggingface_hub's download helpers).
OFFLINE_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
}


def set_offline_environment() -> None:
    """Make every model library refuse network access for the rest of the process.

    Idempotent and cheap. The variables are read at import time, so this runs before those
    libraries are imported; if huggingface_hub is already loaded, its cached flag (what its
    download helpers consult) is flipped too.
    """
    os.environ.update(OFFLINE_ENVIRONMENT)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
