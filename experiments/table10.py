"""Table X: which branches each method models and whether it uses text.

The table's body was lost from the paper's text; it is sourced from Section IV-C7's prose: "M2-CLIP
and DiST model both temporal and spatial branches and use text information. In contrast,
Side4video and TDS-CLIP only model temporal branches and do not use text information."
"""

from experiments.spec import Column, Spec, reference

SPEC = Spec(
    name="table10",
    title="Table X: comparison of modes",
    kind="static",
    columns=(Column("temporal", "Temporal branch"), Column("spatial", "Spatial branch"), Column("text", "Text")),
    references=(
        reference("M2-CLIP", temporal="yes", spatial="yes", text="yes"),
        reference("DiST", temporal="yes", spatial="yes", text="yes"),
        reference("Side4Video", temporal="yes", spatial="no", text="no"),
        reference("TDS-CLIP", temporal="yes", spatial="no", text="no"),
    ),
    source="Section IV-C7's prose (the table's body was lost from the text)",
)
