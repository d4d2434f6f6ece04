"""Table III: component effectiveness (3D conv baseline, + TD-Adapter, + SME-Adapter)."""

from experiments import _ablation as ab
from experiments.spec import Spec, row

SPEC = Spec(
    chart="ablation",
    name="table3",
    title="Table III: study of component effectiveness",
    kind="runs",
    base=ab.SETTING,
    columns=ab.TOP1,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    rows=(
        row("Baseline", ab.BASELINE, top1=58.1),
        row("+ TD-Adapter", ab.TD_ONLY, top1=59.1),
        row("+ SME-Adapter", ab.FULL, top1=59.4),
    ),
)
