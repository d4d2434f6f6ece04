"""The project's command lines: every module `python -m` runs, found in the source.

A module is a command when it is a package's `__main__.py` or ends with an
`if __name__ == "__main__":` block. The suite benchmark times each one's `--help`, and a test checks
that none of them imports torch or MLflow to print it; a new command is covered by both unasked.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tdsclip", "experiments", "sweeps", "reports", "slurm", "benchmarks")
_MAIN_GUARD = re.compile(r"^if __name__ == ['\"]__main__['\"]:", re.MULTILINE)


def commands(root: Path = ROOT) -> list[str]:
    """Module names, sorted: `tdsclip.train` for tdsclip/train/__main__.py, `experiments.run` for
    experiments/run.py with a main guard."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__main__":
                found.append(".".join(parts[:-1]))
            elif _MAIN_GUARD.search(path.read_text(encoding="utf-8")):
                found.append(".".join(parts))
    return sorted(set(found))
