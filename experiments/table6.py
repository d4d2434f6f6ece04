"""Table VI: the TD-Adapter's core: max pooling, a temporal convolution, or a direct difference."""

from experiments import _ablation as ab
from experiments.spec import Column, Spec, row

SPEC = Spec(
    chart="ablation",
    name="table6",
    title="Table VI: ablations for the TD-Adapter core",
    kind="runs",
    base=ab.SETTING,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    columns=(*ab.TOP1, Column("gflops", "GFLOPs", "measured:gflops_over_first_row")),
    rows=(
        row("Pool", ab.FULL + " model.td_mode=pool", top1=59.4, gflops=None),
        row("Conv", ab.FULL + " model.td_mode=conv", top1=59.3, gflops=1.7),
        row("Direct", ab.FULL + " model.td_mode=direct", top1=57.3, gflops=None),
    ),
    notes=(
        "GFLOPs: the paper prints a value only for Conv (1.7), which we read as its extra cost over the "
        "parameter-free modes; ours is each row's measured GFLOPs per view minus the Pool row's.",
    ),
)
