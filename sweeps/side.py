"""Tables IV, VII and VIII as one search: side width d, the TD-Adapter's pooling kernel k, the SME
window m (local frames per sparse frame)."""

from sweeps.space import Categorical, Int
from sweeps.study import Study

STUDY = Study(
    name="side",
    title="Side network: width d, TD pooling kernel k, SME local frames m",
    base=("table3", "+ SME-Adapter"),
    space={
        "model.side_width": Int(128, 512, step=64),
        "model.td_kernel": Categorical(3, 5, 7),
        "model.sme_window": Categorical(1, 3, 5),
    },
    n_trials=24,
)
