"""Table IX: which side blocks carry the TD-Adapter (the others keep the plain 3D conv branch)."""

from experiments import _ablation as ab
from experiments.spec import Column, Spec, row

SPEC = Spec(
    chart="ablation",
    name="table9",
    title="Table IX: location of the TD-Adapter layers",
    kind="runs",
    base=ab.SETTING,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    columns=(
        Column("layers_1_6", "Layer 1-6"),
        Column("layers_7_12", "Layer 7-12"),
        Column("sme", "SME-Adapter"),
        *ab.TOP1,
    ),
    rows=(
        row("1-6", ab.TD_ONLY + " model.td_layers=first-half", layers_1_6="yes", layers_7_12="no", sme="no", top1=58.8),
        row(
            "7-12", ab.TD_ONLY + " model.td_layers=second-half", layers_1_6="no", layers_7_12="yes", sme="no", top1=58.6
        ),
        row("1-12", ab.TD_ONLY + " model.td_layers=all", layers_1_6="yes", layers_7_12="yes", sme="no", top1=59.1),
        row("1-12 + SME", ab.FULL + " model.td_layers=all", layers_1_6="yes", layers_7_12="yes", sme="yes", top1=59.4),
    ),
    notes=("Layer halves are 'first-half' / 'second-half' of the backbone's depth: 1-6 and 7-12 on ViT-B/16.",),
)
