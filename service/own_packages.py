"""Are ``index``, ``ingest`` and ``service`` this installation's packages?

Groundwork installs them as top-level packages, so another distribution (or a folder on the
Python path) with one of those names can shadow or overwrite one of them, and the failure
would surface much later as a confusing import or attribute error. The CLI and the server
check at start and refuse to run with a message naming the package and where it came from.
Each of the three packages marks itself (``__distribution__``) and all three must sit in the
same folder as this module's package.

Nothing from ``index`` or ``ingest`` is imported at module level: they are what is checked.
"""

from __future__ import annotations

import importlib
from pathlib import Path

DISTRIBUTION = "groundwork"
OWN_PACKAGES = ("index", "ingest", "service")


class ForeignPackage(RuntimeError):
    """A top-level package of Groundwork's is imported from another distribution or folder."""


def foreign_packages() -> list[str]:
    """One line per own package that is not this installation's; [] when all three are."""
    root = Path(__file__).resolve().parent.parent
    problems: list[str] = []
    for name in OWN_PACKAGES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            problems.append(f"{name!r} cannot be imported ({exc})")
            continue
        file = getattr(module, "__file__", None)
        where = Path(file).resolve().parent if file else None
        if where is None:  # a namespace package: folders named like ours, none of them ours
            problems.append(f"{name!r} is a namespace package over {', '.join(map(str, module.__path__))}, not {root / name}")
        elif where != root / name:
            problems.append(f"{name!r} is imported from {where}, not from {root / name}")
        elif getattr(module, "__distribution__", None) != DISTRIBUTION:
            problems.append(f"{name!r} in {where} has been overwritten by another distribution's package of that name")
    return problems


def check_own_packages() -> None:
    """Raise ``ForeignPackage`` saying what collides and how to fix it."""
    problems = foreign_packages()
    if problems:
        raise ForeignPackage(
            "another package shadows Groundwork's own: " + "; ".join(problems) + ". Groundwork installs the top-level "
            "packages index, ingest and service: uninstall or rename the other one, or install Groundwork in a virtual "
            "environment of its own (and do not run it from a folder holding another package of those names)"
        )
