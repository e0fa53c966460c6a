"""Entry point of ``make bench``: ``.venv/bin/python bench/run.py [--quick]``.

Run as a script, Python puts ``bench/`` itself first on ``sys.path``; the repository root goes
there instead, so the ``bench`` package (and never a module of it shadowing the standard
library) is what gets imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _fix_path() -> None:
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


def main() -> int:
    _fix_path()
    from bench.main import main as bench_main

    return bench_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
