"""python -m tdsclip.train [--preset P] [--runs-dir DIR] [key=value ...]

Trains one run into DIR/<run_id>/ (default runs/, or $TDSCLIP_RUNS), evaluates it with the
multi-view protocol, and prints the path of its result.json as the last line. Running the same
command again prints the finished result at once; after an interruption it resumes. The stop
signal (train.stop_signal, default SIGUSR2), Ctrl-C and SIGTERM checkpoint at the next step and
exit with code 3; a second Ctrl-C aborts at once (code 130; the last checkpoint stays). A run
another process is training is refused with code 5 (--wait waits for it instead).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tdsclip import locations, presets
from tdsclip.config import ConfigError
from tdsclip.runlock import RunLocked
from tdsclip.runstate import default_runs_dir

STOPPED_EXIT_CODE = 3
LOCKED_EXIT_CODE = 5
ABORTED_EXIT_CODE = 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tdsclip.train", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides (python -m tdsclip.config --help)"
    )
    parser.add_argument("--preset", default="paper", help=f"recipe: {', '.join(presets.PRESETS)} (default paper)")
    parser.add_argument(
        "--runs-dir", type=Path, default=None, help="where run folders go (default runs/ or $TDSCLIP_RUNS)"
    )
    parser.add_argument("--wait", action="store_true", help="if another process trains this run, wait for it")
    args = parser.parse_args(argv)
    # torch comes in with these, after the arguments are read: --help and a bad argument answer at once.
    from tdsclip.model.weights import WeightsError
    from tdsclip.train.checkpoint import CheckpointError
    from tdsclip.train.loop import TrainingError
    from tdsclip.train.run import run_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = presets.resolve(args.preset, args.overrides)
        cfg = locations.fill(cfg, require_weights=args.preset != "smoke")
        outcome = run_config(cfg, preset=args.preset, runs_dir=args.runs_dir or default_runs_dir(), wait=args.wait)
    except RunLocked as error:
        print(f"error: {error}", file=sys.stderr)
        return LOCKED_EXIT_CODE
    except KeyboardInterrupt:
        print(
            "aborted by a second Ctrl-C; the last checkpoint is kept: run the same command to resume", file=sys.stderr
        )
        return ABORTED_EXIT_CODE
    except PermissionError as error:
        print(
            f"error: {error.filename or 'a file'}: not writable ({error.strerror}); choose another --runs-dir",
            file=sys.stderr,
        )
        return 2
    except (ConfigError, WeightsError, CheckpointError, TrainingError, ValueError) as error:
        print(f"error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", file=sys.stderr)
        return 2
    if outcome.status == "stopped":
        print(
            f"stopped by {outcome.signal} at the next step boundary; checkpoint {outcome.path}; "
            "run the same command to resume"
        )
        return STOPPED_EXIT_CODE
    metrics = outcome.result.get("metrics", {})
    print(json.dumps({k: round(v, 2) for k, v in metrics.items() if isinstance(v, (int, float))}))
    print(outcome.path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
