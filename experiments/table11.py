"""Table XI: where the SME-Adapter's features enter (five modes of Section IV-C9)."""

from experiments import _ablation as ab
from experiments.spec import Spec, row

SPEC = Spec(
    chart="ablation",
    name="table11",
    title="Table XI: SME-Adapter location",
    kind="runs",
    base=ab.SETTING,
    columns=ab.TOP1,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    rows=(
        row("Spatial", ab.FULL + " model.sme_placement=spatial", top1=53.4),
        row(
            "Temporal",
            ab.FULL + " model.sme_placement=temporal",
            top1=60.1,
            note="the configuration of Table III's full model, which the paper prints as 59.4",
        ),
        row("Spatial+Temporal", ab.FULL + " model.sme_placement=spatial_temporal", top1=55.6),
        row("Cross Path", ab.FULL + " model.sme_placement=cross", top1=59.8),
        row("Additional Path", ab.FULL + " model.sme_placement=additional", top1=58.7),
    ),
)
