"""Table VIII: the side network's width d."""

from experiments import _ablation as ab
from experiments.spec import Spec, row

SPEC = Spec(
    chart="ablation",
    name="table8",
    title="Table VIII: the impact of dimensionality",
    kind="runs",
    base=ab.SETTING,
    columns=ab.TOP1,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    rows=(
        row("128", ab.FULL + " model.side_width=128", top1=57.4),
        row("320", ab.FULL + " model.side_width=320", top1=59.4),
        row("512", ab.FULL + " model.side_width=512", top1=58.2),
    ),
)
