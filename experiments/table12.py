"""Table XII: inference memory of the side network with no temporal module, with ST-Adapters in
the backbone, with the 3D conv, with the TD-Adapter, and with the SME-Adapter.

Measured with tdsclip.measure: peak CUDA memory of one inference forward on a GPU machine;
elsewhere the bytes saved for backward in one training forward, labelled as such. Absolute GiB
depend on a batch the paper does not state, so rows are compared as ratios to the baseline row.
"""

from experiments import _ablation as ab
from experiments.spec import Column, Spec, row

SPEC = Spec(
    chart="memory",
    tolerance=0.05,  # ratios to the baseline row
    name="table12",
    title="Table XII: inference memory efficiency",
    kind="measure",
    base=ab.SETTING,
    columns=(
        Column("memory_gib", "Memory (GiB)", "measured:memory"),
        Column("ratio", "Ratio to baseline", "measured:memory_ratio"),
    ),
    rows=(
        row("Baseline", "model.temporal=none model.sme_window=1", memory_gib=8.334, ratio=1.0),
        row(
            "w/ ST-Adapter",
            "model.temporal=none model.sme_window=1 model.backbone_tuning=st_adapter",
            memory_gib=23.671,
            ratio=round(23.671 / 8.334, 3),
        ),
        row("w/ 3D Conv", ab.BASELINE, memory_gib=9.121, ratio=round(9.121 / 8.334, 3)),
        row("w/ TD-Adapter", ab.TD_ONLY, memory_gib=8.781, ratio=round(8.781 / 8.334, 3)),
        row("w/ SME-Adapter", ab.FULL, memory_gib=8.799, ratio=round(8.799 / 8.334, 3)),
    ),
    protocol="memory: CUDA peak of one inference forward (GPU), else bytes saved for backward per training clip",
    source="Table XII (batch not stated)",
)
