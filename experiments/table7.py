"""Table VII: the temporal kernel k of the TD-Adapter's max pooling."""

from experiments import _ablation as ab
from experiments.spec import Spec, row

SPEC = Spec(
    chart="ablation",
    name="table7",
    title="Table VII: pooling kernel size",
    kind="runs",
    base=ab.SETTING,
    columns=ab.TOP1,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    rows=(
        row("k=3", ab.FULL + " model.td_kernel=3", top1=59.4),
        row("k=5", ab.FULL + " model.td_kernel=5", top1=59.2),
        row("k=7", ab.FULL + " model.td_kernel=7", top1=58.8),
    ),
)
