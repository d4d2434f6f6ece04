"""A table on Slurm: submit its pending rows as job arrays, follow them, cancel them.

    python -m experiments.run table3 --executor slurm [--profile a100] [--nodes 1]   # returns at once
    python -m experiments.run table3 --status        # Slurm state, progress, GPU-hours, results
    python -m experiments.run table3 --cancel

One job array per resource group (rows with the same backbone), one job per run; a report job
runs after the arrays (afterany). What was submitted is kept in runs/slurm/<table>-<preset>/jobs.json,
which --status and --cancel read; submitit's logs and the code snapshot are beside it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.plan import Planned, record_tags
from experiments.render import grid
from experiments.spec import Spec


def folder(runs_dir: Path, spec: Spec, preset: str) -> Path:
    from tdsclip.runstate import RunsFolder

    return RunsFolder(runs_dir).slurm(spec.name, preset)


@dataclass(frozen=True)
class Submission:
    rows: list[dict]
    """One per submitted run: row, seed, run_id, job_id."""
    report_job: str


def _groups(runs: Sequence[Planned], preset: str, spec: Spec, overrides: Sequence[str] = ()):
    from slurm.profiles import Resources
    from slurm.submit import RunGroup, RunSpec

    pending = [p for p in runs if p.status != "finished" and not p.shared_with]
    by_backbone: dict[str, list[Planned]] = {}
    for p in pending:
        by_backbone.setdefault(p.cfg.model.backbone, []).append(p)
    groups = [
        RunGroup(Resources(backbone), [RunSpec(p.cfg, preset, record_tags(spec, p, preset, overrides)) for p in rows])
        for backbone, rows in by_backbone.items()
    ]
    return groups, [p for rows in by_backbone.values() for p in rows]


def dry_run(
    spec: Spec,
    preset: str,
    runs: Sequence[Planned],
    profile_name: str,
    profile_overrides: Sequence[str],
    nodes: int,
    runs_dir: Path,
) -> str:
    """The sbatch script each array would get, and the GPU-hours on this profile."""
    from slurm.profiles import gpus_per_job, load_profile
    from slurm.submit import sbatch_script

    profile = load_profile(profile_name, profile_overrides)
    groups, _ = _groups(runs, preset, spec)
    lines = [
        f"profile {profile.name}: {nodes} node(s) x {profile.gpus_per_node} GPUs per job "
        f"({gpus_per_job(profile, nodes)} GPUs), {profile.tasks_per_node} tasks per node"
    ]
    for group in groups:
        lines += [
            "",
            f"# array tdsclip-{group.resources.name}: {len(group.runs)} job(s)",
            sbatch_script(profile, nodes, group.resources, len(group.runs), folder(runs_dir, spec, preset)),
        ]
    if not groups:
        lines.append("nothing to submit: every row is done")
    return "\n".join(lines)


def submit(
    spec: Spec,
    preset: str,
    runs: Sequence[Planned],
    overrides: Sequence[str],
    profile_name: str,
    profile_overrides: Sequence[str],
    nodes: int,
    runs_dir: Path,
) -> Submission:
    """Submit the pending runs and the report job; return at once. A failure removes what this
    submission wrote (the code snapshot, submitit's pickles and scripts)."""
    from slurm.profiles import load_profile

    profile = load_profile(profile_name, profile_overrides)
    where = folder(runs_dir, spec, preset)
    groups, submitted = _groups(runs, preset, spec, overrides)
    before = _entries(where)
    try:
        return _submit(spec, preset, overrides, profile, nodes, runs_dir, where, groups, submitted)
    except BaseException:
        _remove_new(where, before)  # a failed submission leaves no snapshot and no pickles behind
        raise


def _entries(where: Path) -> set[Path]:
    return set(where.rglob("*")) if where.exists() else set()


def _remove_new(where: Path, before: set[Path]) -> None:
    """Remove what appeared under `where` since `before` (deepest first), and `where` if it is new."""
    existed = where.exists() and bool(before)
    for path in sorted(_entries(where) - before, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    if not existed:
        with contextlib.suppress(OSError):
            where.rmdir()


def _submit(
    spec: Spec,
    preset: str,
    overrides: Sequence[str],
    profile,
    nodes: int,
    runs_dir: Path,
    where: Path,
    groups,
    submitted,
) -> Submission:
    from slurm.snapshot import take_snapshot
    from slurm.submit import submit_after, submit_runs

    code = take_snapshot(where / "code")
    ids = submit_runs(groups, profile, nodes, where, runs_dir=runs_dir, snapshot=code) if groups else []
    report = submit_after(
        report_job,
        spec.name,
        preset,
        list(overrides),
        str(runs_dir.resolve()),
        after=ids,
        profile=profile,
        folder=where,
        snapshot=code,
    )
    rows = [{"row": p.row.name, "seed": p.seed, "run_id": p.run_id, "job_id": job} for p, job in zip(submitted, ids)]
    previous = (_submitted(where) or {"rows": []})["rows"]
    kept = [r for r in previous if r["run_id"] not in {row["run_id"] for row in rows}]
    record = {"rows": kept + rows, "report_job": report}
    from tdsclip.records import write_json_atomic

    write_json_atomic(where / "jobs.json", record)
    return Submission(rows, report)


def _submitted(where: Path) -> dict | None:
    """What was submitted from `where` (its jobs.json), or None when nothing was."""
    path = where / "jobs.json"
    return json.loads(path.read_text()) if path.exists() else None


def report_job(name: str, preset: str, overrides: list[str], runs_dir: str) -> str:
    """The report of a table, built on the cluster once its runs ended (the afterany job)."""
    from reports.build import report_for_run

    return str(report_for_run(name, preset, Path(runs_dir), overrides, 1))


def _progress(run_dir: Path) -> str:
    """The last complete line of metrics.jsonl (a torn last line, a crash's, is skipped)."""
    from tdsclip.records import METRICS_FILE, RecordError, read_metrics

    try:
        entries = read_metrics(run_dir / METRICS_FILE)
    except RecordError as error:
        return f"unreadable ({error})"
    return f"epoch {entries[-1].epoch} step {entries[-1].step}" if entries else "-"


def status(spec: Spec, preset: str, runs: Sequence[Planned], runs_dir: Path) -> str:
    """Each row's run id, Slurm state, progress, GPU-hours used beside the estimate, and its result;
    finished runs are synced into MLflow."""
    from slurm.submit import failure_reason, job_states
    from tdsclip.runstate import read_state
    from tdsclip.track import sync_runs

    where = folder(runs_dir, spec, preset)
    record = _submitted(where)
    if record is None:
        return f"{spec.name} ({preset}): nothing submitted to Slurm from {runs_dir} (no {where / 'jobs.json'})"
    jobs = {r["run_id"]: r for r in record["rows"]}
    states = job_states([r["job_id"] for r in record["rows"]] + [record["report_job"]])
    metric = next((c.metric for c in spec.columns if c.metric and not c.metric.startswith("measured:")), "")
    table, notes = [], []
    for p in runs:
        job = jobs.get(p.run_id)
        state = states.get(job["job_id"]) if job else None
        result_file = runs_dir / p.run_id / "result.json"
        result = json.loads(result_file.read_text()).get("metrics", {}) if result_file.exists() else {}
        estimate = f"{p.cost.hours:.3g}" if p.cost else "?"
        used = f"{state.gpu_hours:.3g}" if state else "-"
        table.append(
            (
                p.row.name,
                p.seed,
                p.run_id,
                job["job_id"] if job else "-",
                state.state if state else "-",
                read_state(runs_dir / p.run_id).state,
                _progress(runs_dir / p.run_id),
                f"{used} / {estimate}",
                f"{result[metric]:.4g}" if metric in result else "-",
            )
        )
        if state and state.state not in ("COMPLETED", "RUNNING", "PENDING", "REQUEUED") and state.finished:
            notes.append(
                f"{p.row.name}: {state.state}: {failure_reason(where, job['job_id']) or 'no reason in the log'}"
            )
    report = states.get(record["report_job"])
    synced = sync_runs(runs_dir)
    lines = [
        f"{spec.title} -- preset {preset}, Slurm",
        "",
        grid(
            ("row", "seed", "run id", "job", "Slurm state", "run state", "progress", "GPU-h used / est.", "result"),
            table,
        ),
        "",
        f"report job {record['report_job']}: {report.state if report else 'unknown'}",
        f"MLflow: {synced.summary()}",
    ]
    return "\n".join(lines + notes)


def cancel(spec: Spec, preset: str, runs_dir: Path) -> str:
    from slurm.submit import cancel as scancel

    where = folder(runs_dir, spec, preset)
    record = _submitted(where)
    if record is None:
        return f"{spec.name} ({preset}): nothing submitted to Slurm from {runs_dir}"
    ids = [r["job_id"] for r in record["rows"]] + [record["report_job"]]
    scancel(ids)
    return f"cancelled {len(ids)} job(s): {' '.join(ids)}"
