"""Table V as a search: the fusion rates of the RGB stem (alpha) and the SME stem (beta)."""

from sweeps.space import Float
from sweeps.study import Study

STUDY = Study(
    name="fusion",
    title="Fusion: the RGB (alpha) and SME (beta) rates of the side network's input",
    base=("table3", "+ SME-Adapter"),
    space={
        "model.sme_alpha": Float(0.25, 1.5),
        "model.sme_beta": Float(0.25, 2.0),
    },
    n_trials=16,
)
