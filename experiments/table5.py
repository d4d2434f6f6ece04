"""Table V: fusion rates of the RGB stem (alpha) and the SME stem (beta) in the side input."""

from experiments import _ablation as ab
from experiments.spec import Column, Spec, row

SPEC = Spec(
    chart="ablation",
    name="table5",
    title="Table V: the impact of the fusion rate",
    kind="runs",
    base=ab.SETTING,
    protocol=ab.PROTOCOL,
    source=ab.SOURCE,
    columns=(Column("alpha", "RGB (alpha)"), Column("beta", "SME (beta)"), *ab.TOP1),
    rows=(
        row(
            "1.0 / -",
            "model.temporal=td model.sme_window=1 model.sme_alpha=1.0",
            alpha=1.0,
            beta=None,
            top1=58.1,
            note="no SME stem: the configuration of Table III's '+ TD-Adapter' (59.1); the paper prints 58.1",
        ),
        row(
            "- / 1.0",
            ab.FULL + " model.sme_alpha=0 model.sme_beta=1.0",
            alpha=None,
            beta=1.0,
            top1=47.4,
            note="SME only: no RGB stem feeds the side network",
        ),
        row("0.5 / 1.0", ab.FULL + " model.sme_alpha=0.5 model.sme_beta=1.0", alpha=0.5, beta=1.0, top1=58.4),
        row("1.0 / 1.0", ab.FULL + " model.sme_alpha=1.0 model.sme_beta=1.0", alpha=1.0, beta=1.0, top1=59.4),
        row("1.0 / 0.5", ab.FULL + " model.sme_alpha=1.0 model.sme_beta=0.5", alpha=1.0, beta=0.5, top1=58.9),
    ),
)
