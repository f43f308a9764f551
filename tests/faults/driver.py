"""A Groundwork process for the fault suite to kill: `python -m tests.faults.driver ACTION DATA_DIR [CORPUS]`.

ACTION is ingest (the corpus folder, then catch the indexes up), reindex, or verify (prints
the report as JSON; exit 1 when inconsistent). It prints READY once it is about to work.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.faults.harness import open_groundwork, settings_for


def main(argv: list[str]) -> int:
    action, data_dir = argv[0], Path(argv[1])
    gw = open_groundwork(settings_for(data_dir))
    try:
        print("READY", flush=True)
        if action == "ingest":
            gw.indexes  # opened first, as the CLI does, so the kill can land in index writes too
            summary = gw.ingest([Path(argv[2])], progress=False)
            gw.refresh_indexes()
            print(json.dumps(summary.to_json()))
        elif action == "reindex":
            print(json.dumps({"version": gw.reindex()}))
        elif action == "verify":
            report = gw.verify()
            print(json.dumps(report, default=str))
            return 0 if report["consistent"] else 1
        return 0
    finally:
        gw.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
