"""Command line of the data pipeline.

    python -m tdsclip.data synth   --format ssv1|ssv2|k400 --out DIR [--classes N --videos-per-class N]
    python -m tdsclip.data extract --root VIDEOS --out FRAMES [--workers N]
    python -m tdsclip.data check   --format ssv1|ssv2|k400|list --root DIR --annotations FILE [--labels FILE] [--json]
                                   [--reference LIST [--reference-labels CSV]]
    python -m tdsclip.data resize  --root VIDEOS --out DIR [--short-side 320] [--workers N]
    python -m tdsclip.data subsets --format ... --root DIR --annotations FILE [--labels FILE] --out DIR

Errors are one line, `error: ...`, on stderr: exit 2 for a usage mistake, 1 when the data or a
file is not what was expected (check: 1 when the data is not usable).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from tdsclip.data.errors import DataError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"error: {message} (see python -m tdsclip.data {self.prog.split()[-1]} --help)", file=sys.stderr)
        raise SystemExit(2)


def _fractions(text: str) -> list[float]:
    try:
        values = [float(part) / 100 for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated percentages like 5,10,25,50, got {text!r}"
        ) from None
    if not values or not all(0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected percentages in (0, 100], got {text!r}")
    return values


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 128x96, got {text!r}") from None
    return width, height


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tdsclip.data", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    synth = commands.add_parser("synth", help="write the synthetic motion dataset in a real format")
    synth.add_argument("--format", required=True, choices=["ssv1", "ssv2", "k400"])
    synth.add_argument("--out", required=True, help="new folder to write")
    synth.add_argument("--classes", type=int, default=8)
    synth.add_argument("--videos-per-class", type=int, default=12)
    synth.add_argument("--frames", type=int, default=12, help="frames per video, +-25%%")
    synth.add_argument("--size", type=_size, default=(128, 96), help="WIDTHxHEIGHT (default 128x96)")
    synth.add_argument("--seed", type=int, default=0)

    extract = commands.add_parser("extract", help="turn videos into JPEG frame folders (resumable, parallel)")
    extract.add_argument("--root", required=True, help="folder holding the videos")
    extract.add_argument("--out", required=True, help="folder for the frame folders")
    extract.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    extract.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")

    resize = commands.add_parser(
        "resize", help="re-encode videos with a smaller short side (resumable, parallel; ffmpeg CLI)"
    )
    resize.add_argument("--root", required=True, help="folder holding the videos")
    resize.add_argument("--out", required=True, help="folder for the resized copy")
    resize.add_argument("--short-side", type=int, default=320, help="short side in pixels, even (default 320)")
    resize.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="ffmpeg processes at a time")

    for name, text in (
        ("check", "read everything a run would read; exit 0 when usable"),
        ("subsets", "write seeded class-balanced subsets of a training split"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--format", required=True, choices=["ssv1", "ssv2", "k400", "list"])
        sub.add_argument("--root", required=True, help="folder holding the videos or frame folders")
        sub.add_argument("--annotations", required=True, help="the split file")
        sub.add_argument("--labels", default="", help="labels file (required for ssv1 and ssv2)")
        sub.add_argument("--workers", type=int, default=os.cpu_count() or 1)
        sub.add_argument(
            "--cache-dir", default=None, help="manifest cache (default $TDSCLIP_CACHE or ~/.cache/tdsclip)"
        )
    commands.choices["check"].add_argument("--json", action="store_true", help="print one JSON object")
    commands.choices["check"].add_argument(
        "--max-unreadable",
        type=float,
        default=0.01,
        help="largest usable fraction of unreadable samples (default 0.01)",
    )
    commands.choices["check"].add_argument(
        "--reference", default="", help="a shared `path num_frames label` list to compare with"
    )
    commands.choices["check"].add_argument(
        "--reference-labels", default="", help="the reference list's `id,name` labels CSV"
    )
    subsets = commands.choices["subsets"]
    subsets.add_argument("--out", required=True, help="folder for the list files")
    subsets.add_argument("--fractions", type=_fractions, default=[0.05, 0.10, 0.25, 0.50], help="percentages")
    subsets.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check" and args.reference_labels and not args.reference:
        print(
            "error: --reference-labels needs --reference LIST (see python -m tdsclip.data check --help)",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return {"synth": _synth, "extract": _extract, "resize": _resize, "check": _check, "subsets": _subsets}[
            args.command
        ](args)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _synth(args: argparse.Namespace) -> int:
    from tdsclip.data.synth import SynthSpec, write_synthetic

    spec = SynthSpec(args.format, args.classes, args.videos_per_class, args.frames, *args.size, args.seed)
    data = write_synthetic(spec, args.out)
    print(json.dumps(vars(data), indent=1))
    return 0


def _extract(args: argparse.Namespace) -> int:
    from tdsclip.data.extract import extract

    return _converted(extract(args.root, args.out, args.workers, args.quality), "extracted", "failed")


def _resize(args: argparse.Namespace) -> int:
    from tdsclip.data.resize import resize

    return _converted(resize(args.root, args.out, args.short_side, args.workers), "resized", "failed (skipped)")


def _converted(result, done: str, failed: str) -> int:
    """The summary of a tree conversion (extract, resize): counts, then the first failures."""
    print(
        f"videos {result.videos}, {done} before {result.done_before}, "
        f"now {result.videos - result.done_before - len(result.failed)}, {failed} {len(result.failed)}"
    )
    for video, reason in list(result.failed.items())[:5]:
        print(f"  {video}: {reason}")
    return 1 if result.failed else 0


def _check(args: argparse.Namespace) -> int:
    from tdsclip.data.annotations import find_samples, read_split
    from tdsclip.data.check import check
    from tdsclip.data.manifest import manifest
    from tdsclip.data.reference import compare, read_reference
    from tdsclip.data.reference import text as reference_text

    reference = read_reference(args.reference, args.reference_labels) if args.reference else None
    report = check(
        args.format, args.root, args.annotations, args.labels, args.workers, args.max_unreadable, args.cache_dir
    )
    result, lines = report.as_dict(), [report.text()]
    if reference is not None:  # the found samples and frame counts again, from the manifest cache check just filled
        found = find_samples(read_split(args.format, args.annotations, args.labels), args.root)
        result["reference"] = compare(found, manifest(found, args.cache_dir, args.workers).frames, reference)
        lines.append(reference_text(result["reference"]))
    print(json.dumps(result) if args.json else "\n".join(lines))
    return 0 if report.usable else 1


def _subsets(args: argparse.Namespace) -> int:
    from tdsclip.data.annotations import find_samples, read_split
    from tdsclip.data.manifest import manifest
    from tdsclip.data.subsets import write_subsets

    found = find_samples(read_split(args.format, args.annotations, args.labels), args.root)
    for subset in write_subsets(
        found, manifest(found, args.cache_dir, args.workers), args.out, args.fractions, args.seed
    ):
        print(f"{subset.fraction:>6.0%} {subset.videos:>7} videos  {subset.file}  sha256 {subset.sha256}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
