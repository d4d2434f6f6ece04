"""Fig. 5: activation maps of the side network with and without the SME-Adapter, on the same clips.

The maps come from trained checkpoints of Table III's '+ TD-Adapter' (without SME) and
'+ SME-Adapter' (with SME) rows, which this figure trains if they have not run. Method: the
per-patch L2 norm of the last side block's output tokens after removing their mean over the
frame's patches (the raw norm is dominated by a component every patch shares), upsampled
bilinearly over the frame.
"""

from experiments import _ablation as ab
from experiments.spec import Column, Spec, row

SPEC = Spec(
    chart="maps",
    name="fig5",
    title="Fig. 5: side-network activation maps with and without the SME-Adapter",
    kind="maps",
    base=ab.SETTING,
    protocol=ab.PROTOCOL,
    source="Section IV-C8 (qualitative in the paper)",
    columns=(Column("box_mass", "Map mass inside the object's box", "measured:box_mass"),),
    rows=(
        row("without SME", ab.TD_ONLY, box_mass=None),
        row("with SME", ab.FULL, box_mass=None),
    ),
    extra={
        "clips": 24,
        "caption": "Per-patch L2 norm of the last side block's output minus its mean over "
        "the frame's patches, bilinearly upsampled over the frame; brighter is stronger.",
    },
)
