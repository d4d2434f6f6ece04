"""A study of the tests' own, defined the way a user adds one (python -m sweeps.run sweep_probe):
a useful and a useless learning rate, so the median pruner has a deliberately bad trial to stop.
The smoke recipe's own lr is not among them, so the tests enqueue every trial they rely on."""

from sweeps.space import Categorical
from sweeps.study import Study

STUDY = Study(
    name="lr-probe",
    title="Probe: a learning rate that learns and one that cannot",
    base=("table3", "+ SME-Adapter"),
    space={"optim.lr": Categorical(1e-3, 1e-7), "optim.weight_decay": Categorical(0.05, 0.06)},
    sampler="random",
    startup_trials=2,
    warmup_epochs=1,
    n_trials=3,
)
