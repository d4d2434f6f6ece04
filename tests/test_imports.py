"""The import rules of the house, read from the source (ast; imports inside functions included):
no cycle between modules, the library imports no other top-level package, reports and sweeps
import neither experiments.run nor the executors, and reports reads only experiments' specs."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tdsclip", "experiments", "reports", "sweeps", "slurm", "benchmarks")
EXECUTORS = ("experiments.run", "experiments.local", "experiments.cluster")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, at any depth of its code ("from a import b" is a.b if
    that is a module, else a)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_reader_sees_imports_inside_functions_and_relative_ones(tmp_path):
    """The rules below are only as good as this reader."""
    path = tmp_path / "m.py"
    path.write_text(
        "import os\nfrom . import spec\ndef f():\n    from experiments.run import main\n    import reports.build as b\n"
    )
    found = imports(
        "experiments.plan", path, {"experiments", "experiments.spec", "experiments.run", "reports", "reports.build"}
    )
    assert found == {"experiments.spec", "experiments.run", "reports.build"}


def test_no_import_cycle_between_modules():
    try:
        graphlib.TopologicalSorter(graph()).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_library_imports_no_other_top_level_package():
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in graph().items()
        if top(m) == "tdsclip"
        for t in targets
        if top(t) != "tdsclip"
    )
    assert not bad, "; ".join(bad)


def test_reports_and_sweeps_do_not_import_the_command_or_the_executors():
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in graph().items()
        if top(m) in ("reports", "sweeps")
        for t in targets
        if t in EXECUTORS
    )
    assert not bad, "; ".join(bad)


def test_reports_read_only_the_specs_of_experiments():
    """The tables' definitions and paper values (spec, table*, fig*, and the modules they are
    written with), nothing of planning, costing or running."""
    found = graph()
    specs = {"experiments", "experiments.spec"} | {
        m for m in found if top(m) == "experiments" and m.split(".")[-1].startswith(("table", "fig"))
    }
    allowed = specs | {"experiments.presets_table"}  # Table XIII is the presets, rendered by this module
    for name in specs:  # what the specs themselves are written with (_ablation, _reference)
        allowed |= {t for t in found[name] if top(t) == "experiments" and t.split(".")[-1].startswith("_")}
    bad = sorted(
        f"{m} imports {t}"
        for m, targets in found.items()
        if top(m) == "reports"
        for t in targets
        if top(t) == "experiments" and t not in allowed
    )
    assert not bad, "; ".join(bad)


WRITERS = ("tdsclip.track", "tdsclip.mirror")
"""The tracker and its low-level MLflow adapter: the only modules that write MLflow."""
MIRROR_WRITES = ("push", "set_status", "experiment_id")
"""Mirror's own writing methods besides the client's (experiment_id creates a missing experiment)."""


def client_writes() -> set[str]:
    """The writing methods of MLflow's client by name: create_run, log_batch, set_terminated, ..."""
    from mlflow.tracking import MlflowClient

    prefixes = ("create_", "log_", "set_", "delete_", "update_", "rename_", "restore_", "transition_", "upload_")
    return {n for n in dir(MlflowClient) if n.startswith(prefixes)}


def mlflow_use(path: Path) -> tuple[set[str], set[str], set[str]]:
    """What a module takes of MLflow (the mlflow modules and tdsclip.mirror names it imports, at any
    depth), every attribute name it reads (`x.create_run` -> create_run, called or passed on, as to
    Mirror.call) and the attribute names it calls (`x.push(...)` -> push)."""
    taken, attributes, called = set(), set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            taken |= {a.name for a in node.names if top(a.name) == "mlflow"}
        elif isinstance(node, ast.ImportFrom) and node.module and top(node.module) == "mlflow":
            taken.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.module == "tdsclip.mirror":
            taken |= {f"tdsclip.mirror.{a.name}" for a in node.names}
        elif isinstance(node, ast.Attribute):
            attributes.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            called.add(node.func.attr)
    return taken, attributes, called


def test_the_reader_of_mlflow_use_sees_writes_through_a_late_import(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "def f(e):\n    from tdsclip.mirror import Mirror\n    m = Mirror(None, None, 0)\n"
        "    m.call('x', m.client.create_run, e.experiment_id)\n    m.push(e)\n"
    )
    taken, attributes, called = mlflow_use(path)
    assert taken == {"tdsclip.mirror.Mirror"} and {"create_run", "experiment_id"} <= attributes
    assert called == {"call", "push"}
    assert "create_run" in client_writes() and "search_runs" not in client_writes()


def test_only_the_tracker_writes_mlflow():
    """Why: sweeps/tracking.py and experiments/local.py wrote MLflow beside the tracker, so MLflow
    did not mirror the run state. Only tdsclip/track.py (through tdsclip/mirror.py) imports mlflow;
    a module that takes tdsclip.mirror.Mirror to read MLflow (reports' MLflow source) uses none of
    the client's writing methods and calls none of Mirror's."""
    writes, bad = client_writes(), []
    for name, path in modules().items():
        if name in WRITERS:
            continue
        taken, attributes, called = mlflow_use(path)
        bad += [f"{name} imports {t}" for t in sorted(taken) if top(t) == "mlflow"]
        if "tdsclip.mirror.Mirror" in taken:
            found = (attributes & writes) | (called & set(MIRROR_WRITES))
            bad += [f"{name} writes through Mirror ({w})" for w in sorted(found)]
    assert not bad, "; ".join(bad) + " (MLflow is written through tdsclip.track only)"
