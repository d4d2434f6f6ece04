"""Atomic writes: a file or a folder appears complete or not at all, and nothing is overwritten by
half a result (a temporary sibling, flushed, then renamed)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tdsclip.atomic import atomic_write, umask
from tdsclip.data.errors import DataError


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, fsynced, then renamed."""
    atomic_write(path, lambda handle: handle.write(data.encode("utf-8") if isinstance(data, str) else data))


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Atomically write `value` as indented, key-sorted JSON."""
    write_atomic(path, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def new_folder(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; rename it to `final` when the block succeeds.

    `final` must not exist yet (nothing already written is replaced); if another process created
    it meanwhile the rename fails and DataError says so. On any error the temporary folder goes.
    """
    final = Path(final)
    if final.exists():
        raise DataError(f"{final} already exists: expected a new folder (remove it or choose another)")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            raise DataError(f"{final} appeared while it was being written: expected a new folder") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_text(path: str | os.PathLike, what: str) -> str:
    """A text file the user named (an annotation or reference list), as UTF-8; a missing or
    unreadable one is a one-line DataError naming it as `what`."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {str(path)!r} cannot be read as UTF-8 text: {error}") from None
