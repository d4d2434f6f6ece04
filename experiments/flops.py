"""Refresh the committed FLOPs cache (experiments/flops.json) for every row of every spec.

    python -m experiments.flops [--check]

Measures, on the meta device, each model configuration any spec row resolves to under any preset
and is not in the cache yet, and drops entries no row needs any more (--check only lists the missing ones and exits 1 if there are).
"""

from __future__ import annotations

import argparse
import sys

from experiments.plan import FLOPS_CACHE, row_config
from experiments.spec import NAMES, load
from tdsclip import measure_cache
from tdsclip.config import RunConfig
from tdsclip.presets import PRESETS


def needed() -> dict[str, RunConfig]:
    """key -> one config with that key, for every row of every spec under every preset."""
    configs: dict[str, RunConfig] = {}
    for name in NAMES:
        spec = load(name)
        for preset in PRESETS:
            for row in spec.rows:
                cfg, _ = row_config(spec, row, preset)
                configs.setdefault(measure_cache.key(cfg), cfg)
    return configs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.flops", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report missing entries")
    args = parser.parse_args(argv)
    wanted = needed()
    entries = {k: v for k, v in measure_cache.load(FLOPS_CACHE).items() if k in wanted}  # no stale entries
    missing = {k: cfg for k, cfg in wanted.items() if k not in entries}
    if args.check:
        for k, cfg in missing.items():
            print(f"missing {k}: {cfg.model.backbone} {cfg.data.frames} frames")
        return 1 if missing else 0
    for number, (k, cfg) in enumerate(missing.items(), 1):
        entries[k] = measure_cache.measure_entry(cfg)
        print(
            f"[{number}/{len(missing)}] {k} {cfg.model.backbone} {cfg.data.frames}f: "
            f"{entries[k]['gflops_per_view']:.1f} GFLOPs per view",
            flush=True,
        )
    measure_cache.save(FLOPS_CACHE, entries)
    print(f"{FLOPS_CACHE}: {len(entries)} entries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
