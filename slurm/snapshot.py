"""The code that runs is the code that was submitted: a copy of the tree at submit time.

A job may start hours after its submission, or be requeued days later; by then the working tree
has moved on. `take_snapshot` copies every file git sees (tracked, plus untracked files that are
not ignored, as they are in the working tree) into a folder and records the commit and whether
the tree differed from it. The jobs import tdsclip, slurm and experiments from that folder:
`job_setup` puts it first on PYTHONPATH and sets PYTHONSAFEPATH, so the job's working directory
(the submitter's, for relative paths) does not shadow it (Python >= 3.11 honours PYTHONSAFEPATH).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECORD = "SNAPSHOT.json"


class SnapshotError(RuntimeError):
    """The tree could not be copied (not a git repository, unreadable file); one line."""


@dataclass(frozen=True)
class Snapshot:
    path: Path
    git_sha: str
    git_dirty: bool

    def tags(self) -> dict[str, str]:
        """Run tags saying which code ran (they win over the job's own git look-up, which sees no .git)."""
        return {
            "git_sha": self.git_sha,
            "git_dirty": str(self.git_dirty).lower(),
            "mlflow.source.git.commit": self.git_sha,
            "code_snapshot": str(self.path),
        }


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SnapshotError(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()[:300]}")
    return done.stdout


def take_snapshot(dest_root: Path, repo: Path = REPO) -> Snapshot:
    """Copy the working tree's git-visible files into a new folder under dest_root."""
    sha = _git(repo, "rev-parse", "HEAD").strip()
    dirty = bool(_git(repo, "status", "--porcelain").strip())
    files = [f for f in _git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0") if f]
    dest_root = Path(dest_root).resolve()
    dest_root.mkdir(parents=True, exist_ok=True)
    prefix = f"{time.strftime('%Y%m%d-%H%M%S')}-{sha[:10]}{'-dirty' if dirty else ''}-"
    dest = Path(tempfile.mkdtemp(prefix=prefix, dir=dest_root))
    for name in files:
        source = repo / name
        if not source.is_file() or source.resolve().is_relative_to(dest_root):  # deleted; an earlier snapshot
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
    # Written last: a folder without it is an interrupted copy.
    (dest / RECORD).write_text(json.dumps({"git_sha": sha, "git_dirty": dirty, "source": str(repo)}, indent=1) + "\n")
    return Snapshot(dest, sha, dirty)


def job_setup(snapshot: Snapshot | None) -> list[str]:
    """Batch-script lines that make the job import the snapshot's code."""
    if snapshot is None:
        return []
    path = shlex.quote(str(snapshot.path))
    return [f'export PYTHONPATH={path}"${{PYTHONPATH:+:$PYTHONPATH}}"', "export PYTHONSAFEPATH=1"]
