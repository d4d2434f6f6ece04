"""The model variants the speed and memory benchmarks compare, as config overrides.

All are ViT-B/16 at 224 px with random weights (nothing measured here depends on the weights).
Table XII's rows read as additions to its baseline (a side network without a temporal module):
'w/ 3D Conv' adds the 3D conv branch, 'w/ TD-Adapter' the TD-Adapter, 'w/ SME-Adapter' the SME
stem (TDS-CLIP), 'w/ ST-Adapter' ST-Adapters inside the frozen CLIP blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdsclip.config import RECOMPUTE_KNOBS, RunConfig, apply_overrides


@dataclass(frozen=True)
class Variant:
    label: str
    overrides: tuple[str, ...]
    paper_gib: float | None = None
    """Table XII's inference memory (GiB), where the variant is one of its rows."""


VARIANTS: dict[str, Variant] = {
    "baseline": Variant(
        "baseline, no temporal module (Table XII)", ("model.temporal=none", "model.sme_window=1"), 8.334
    ),
    "conv3d": Variant("3D-conv baseline (Side4Video)", ("model.temporal=conv3d", "model.sme_window=1"), 9.121),
    "td": Variant("TD (3D conv + TD-Adapter)", ("model.sme_window=1",), 8.781),
    "td_replace": Variant("TD-Adapter in place of the 3D conv", ("model.sme_window=1", "model.td_placement=replace")),
    "tds_clip": Variant("TD + SME (TDS-CLIP)", (), 8.799),
    "st_adapter": Variant(
        "ST-Adapter in CLIP", ("model.backbone_tuning=st_adapter", "model.temporal=none", "model.sme_window=1"), 23.671
    ),
    "full_ft": Variant("full fine-tuning (TDS-CLIP, CLIP trained)", ("model.backbone_tuning=full",)),
}

PAPER_SME_VS_ST = VARIANTS["tds_clip"].paper_gib / VARIANTS["st_adapter"].paper_gib
"""Table XII: TDS-CLIP's memory over ST-Adapter's, 8.799 / 23.671."""

PLAIN = tuple(f"model.{knob}=false" for knob in RECOMPUTE_KNOBS)
"""The plain path: nothing recomputed in backward."""

TABLE_XII = ("baseline", "st_adapter", "conv3d", "td", "tds_clip")
"""Table XII's five rows, in its order."""


def config(name: str, frames: int = 8, plain: bool = False, extra: tuple[str, ...] = ()) -> RunConfig:
    """The RunConfig of variant `name` at `frames` frames, random weights."""
    overrides = [
        "model.weights=random",
        f"data.frames={frames}",
        *VARIANTS[name].overrides,
        *(PLAIN if plain else ()),
        *extra,
    ]
    return apply_overrides(RunConfig(), overrides)
