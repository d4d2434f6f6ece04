"""The training recipe around the paper's full model: learning rate, weight decay, warm-up."""

from sweeps.space import Float
from sweeps.study import Study

STUDY = Study(
    name="recipe",
    title="Recipe: learning rate, weight decay and warm-up of TDS-CLIP",
    base=("table3", "+ SME-Adapter"),
    space={
        "optim.lr": Float(2e-4, 5e-3, log=True),
        "optim.weight_decay": Float(0.01, 0.5, log=True),
        "optim.warmup_epochs": Float(0.0, 4.0),
    },
    n_trials=24,
)
