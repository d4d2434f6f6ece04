"""Map a dataset's classes onto a checkpoint's classifier rows by name.

A released classifier's rows follow the authors' class lists, which their repository ships as
`id,name` CSVs (`lists/sth_labels.csv`: the 174 Something-Something templates, alphabetical, for
SSv1 and SSv2; `lists/kinetics_400_labels.csv`: the 400 Kinetics names, alphabetical). Our loaders
number classes in the official files' order (SSv1: the labels file's line order), which need not
be alphabetical, so evaluating a released model reorders its classifier rows to the dataset's
classes, matching names:

    order = checkpoint_order(dataset_classes, csv_path)     # the checkpoint's class names, row order
    rows = class_rows(dataset_classes, order)               # rows[i]: checkpoint row of dataset class i
    reorder_classifier(model.fc, rows)                      # logits now follow the dataset's order

Names match after `normalise` (case, brackets, commas, underscores and runs of spaces ignored: the
authors' CSVs drop the commas of templates such as "Lifting something up completely, then ...").
Without a CSV the checkpoint's order is the dataset's own names sorted by code point, which is the
authors' order. A name without counterpart, differing counts or names equal after normalising
are one-line errors.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from tdsclip.data.errors import DataError

ALPHABETICAL = "the dataset's class names in alphabetical (code point) order"


def normalise(name: str) -> str:
    """'Lifting [something] up completely, then ...' and 'lifting something up completely then ...' agree."""
    name = re.sub(r"[\[\],]", "", name.replace("_", " ")).lower()
    return " ".join(name.split())


def read_id_name_csv(path: str | Path) -> tuple[str, ...]:
    """Names in id order from an `id,name` CSV with a header (the authors' lists/*.csv)."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except OSError as error:
        raise DataError(f"class list {path}: {error.strerror or error}") from None
    if not rows or [c.strip().lower() for c in rows[0]] != ["id", "name"]:
        raise DataError(
            f"class list {path}: expected a header 'id,name', got {','.join(rows[0]) if rows else 'an empty file'!r}"
        )
    names: dict[int, str] = {}
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != 2 or not row[0].strip().isdigit():
            raise DataError(f"class list {path}:{number}: expected 'id,name', got {','.join(row)!r}")
        names[int(row[0])] = row[1].strip()
    if sorted(names) != list(range(len(names))):
        raise DataError(f"class list {path}: expected ids 0..{len(names) - 1}, each once")
    return tuple(names[i] for i in range(len(names)))


def checkpoint_order(dataset_classes: Sequence[str], csv_path: str | Path | None = None) -> tuple[str, ...]:
    """The checkpoint's class names in row order: from `csv_path`, else the dataset's names sorted."""
    return read_id_name_csv(csv_path) if csv_path else tuple(sorted(dataset_classes))


def _index(names: Sequence[str], what: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        key = normalise(name)
        if key in index:
            raise DataError(f"{what}: classes {names[index[key]]!r} and {name!r} are the same name once normalised")
        index[key] = i
    return index


def class_rows(dataset_classes: Sequence[str], order: Sequence[str], rows: int | None = None) -> list[int]:
    """rows[i] = the checkpoint row of dataset class i; `rows`: the classifier's row count."""
    if rows is not None and len(order) != rows:
        raise DataError(f"the class list has {len(order)} names but the checkpoint's classifier has {rows} rows")
    if len(order) != len(dataset_classes):
        raise DataError(
            f"the dataset has {len(dataset_classes)} classes but the checkpoint's class list has {len(order)}"
        )
    index = _index(order, "checkpoint class list")
    _index(dataset_classes, "dataset")
    mapped = []
    for name in dataset_classes:
        if normalise(name) not in index:
            raise DataError(f"dataset class {name!r} has no counterpart in the checkpoint's class list")
        mapped.append(index[normalise(name)])
    return mapped


def reorder_classifier(fc: nn.Linear, rows: Sequence[int]) -> None:
    """Permute the classifier's rows so that logit i scores dataset class i."""
    index = torch.as_tensor(list(rows), dtype=torch.long, device=fc.weight.device)
    with torch.no_grad():
        fc.weight.copy_(fc.weight[index].clone())
        if fc.bias is not None:
            fc.bias.copy_(fc.bias[index].clone())
