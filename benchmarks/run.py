"""Speed and memory of TDS-CLIP beside its baselines, measured side by side, with the paper's claims as targets.

    python -m benchmarks.run [--quick] [--gpu] [--sections step,activation,data] [--threads N] [--json FILE]

Sections (benchmarks/sections.py holds the registry; --list prints it): step (training step over
the frozen CLIP forward), activation (bytes kept for backward), data (video loading), and with
--gpu the gpu section (needs CUDA). Each prints its table and its targets as pass/fail. The
results of this machine go to benchmarks/results/<machine>.json, merged by section with what the
file already holds (so a section can be rerun alone); --json FILE writes this run's results too.
Exit status 0 whether targets pass or not (they are measurements, not tests); 2 on a usage
error, e.g. --gpu without CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.sections import Options, Result, load_sections
from tdsclip.atomic import atomic_write

RESULTS_DIR = Path(__file__).parent / "results"


def _record(name: str, result: Result, seconds: float) -> dict[str, object]:
    return {
        "keys": result.keys,
        "targets": [t.as_dict() for t in result.targets],
        "seconds": round(seconds, 1),
        "report": result.report,
        "details": result.details,
    }


def _write_json(path: Path, obj: dict[str, object]) -> None:
    text = json.dumps(obj, indent=1) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def merged(previous: dict[str, object], run: dict[str, object]) -> dict[str, object]:
    """This run's sections over those already in the machine's file; top-level keys from all of them."""
    sections = {**previous.get("sections", {}), **run["sections"]}
    keys = {k: v for section in sections.values() for k, v in section["keys"].items()}
    return {**run, "sections": sections, **keys}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer repeats and videos, no plain-path variants (about four minutes on 2 cores)",
    )
    parser.add_argument("--gpu", action="store_true", help="add the GPU section (needs CUDA)")
    parser.add_argument("--sections", help="comma-separated, from --list (default: all but gpu, plus gpu with --gpu)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--batch", type=int, default=1, help="clips per CPU step and activation count (default 1)")
    parser.add_argument("--gpu-batch", type=int, default=8, help="clips per step in the GPU section (default 8)")
    parser.add_argument("--repeats", type=int, help="timed rounds per section (default: each section's own)")
    parser.add_argument("--frames", type=int, help="frames per clip of the CPU step (default 8)")
    parser.add_argument("--videos", type=int, help="videos per type in the data section (default 12, --quick 6)")
    parser.add_argument("--json", type=Path, help="also write this run's results to FILE")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    # The sections bring torch in: loaded after the arguments are read, so --help answers at once.
    import torch

    from benchmarks.gpu import NoCudaError, require_cuda

    sections = load_sections()
    if args.list:
        for section in sections.values():
            print(f"{section.name:<12}{section.help}{' (--gpu)' if section.needs_gpu else ''}")
        return 0
    names = (
        args.sections.split(",") if args.sections else [n for n, s in sections.items() if args.gpu or not s.needs_gpu]
    )
    unknown = [n for n in names if n not in sections]
    if unknown:
        print(f"error: unknown section {unknown[0]!r}; expected one of {', '.join(sections)}", file=sys.stderr)
        return 2
    counts = {
        "--batch": args.batch,
        "--gpu-batch": args.gpu_batch,
        "--threads": args.threads,
        "--repeats": args.repeats,
        "--frames": args.frames,
        "--videos": args.videos,
    }
    bad = [f"{flag} {value}" for flag, value in counts.items() if value is not None and value < 1]
    if bad:
        print(f"error: {bad[0]}: expected >= 1", file=sys.stderr)
        return 2
    try:
        if args.gpu or any(sections[n].needs_gpu for n in names):
            require_cuda()
    except NoCudaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The thread count is process state: a caller (a test, a notebook) gets its own back afterwards.
    threads_before = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _measure(args, sections, names, argv)
    finally:
        torch.set_num_threads(threads_before)


def _measure(args: argparse.Namespace, sections: dict, names: list[str], argv: Sequence[str] | None) -> int:
    """Run the named sections, print their reports and targets, and write the machine's results file."""
    import torch

    from benchmarks import machine

    options = Options(
        quick=args.quick,
        batch=args.batch,
        gpu_batch=args.gpu_batch,
        repeats=args.repeats,
        frames=args.frames,
        videos=args.videos,
    )
    described = machine.describe(gpu=args.gpu)
    run: dict[str, object] = {
        "machine": described,
        "quick": args.quick,
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "sections": {},
    }
    load, cores, threads = described["load_average_at_start"], described["cores"] or 1, torch.get_num_threads()
    if load and load[0] > cores and threads > 1 and "step" in names:
        print(
            f"note: load average {load[0]:.1f} on {cores} cores: other processes hold the CPU, and every op that waits "
            f"for all {threads} threads stalls; step ratios are steadier with --threads 1\n"
        )
    failed = []
    for name in names:
        start = time.perf_counter()
        result = sections[name].run(options)
        seconds = time.perf_counter() - start
        run["sections"][name] = _record(name, result, seconds)
        print("\n".join(result.report))
        for target in result.targets:
            print(
                f"  target {target.key} {target.op} {target.limit:g}: {target.value:.4f} "
                f"{'PASS' if target.passed else 'FAIL'}  ({target.claim})"
            )
            if not target.passed:
                failed.append(target.key)
        print(f"  [{name}: {seconds:.0f} s]\n", flush=True)
    described["load_average_at_end"] = machine.load_average()

    # A quick run never overwrites the full run's numbers: it has a file of its own.
    path = args.results_dir / f"{machine.slug(described)}{'-quick' if args.quick else ''}.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    _write_json(path, merged(previous, run))
    if args.json is not None:
        _write_json(args.json, merged({}, run))
    print(
        f"results: {path}"
        + (f", {args.json}" if args.json else "")
        + (f"; targets not met: {', '.join(failed)}" if failed else "; every target met")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
