"""Fig. 6: data efficiency, TDS-CLIP B/16 and the Side4Video-equivalent baseline trained on 5, 10,
25, 50 and 100% of the training set.

The paper does not say which dataset Fig. 6 uses; we assume Something-Something V2 (the dataset of
the Side4Video, EVL and DiST comparisons it quotes). Its curves' points are not in the text; the
paper states TDS-CLIP's gaps at 5%: +25.9 over EVL B/16, +15.7 over DiST B/16, +2.7 over Side4Video
B/16. The baseline row is the side network with the plain 3D conv branch and Side4Video's stems
(no TD-Adapter, no SME-Adapter, stem padding 0).
"""

from experiments.spec import SINGLE_VIEW, Column, Spec, reference, row

FRACTIONS = (5, 10, 25, 50, 100)
MODELS = (
    ("TDS-CLIP-B/16", "model.temporal=td"),
    ("Side4Video-B/16 (ours)", "model.temporal=conv3d model.sme_window=1 model.stem_padding=0"),
)

SPEC = Spec(
    chart="data_efficiency",
    name="fig6",
    title="Fig. 6: data efficiency on SSv2 (assumed)",
    kind="runs",
    base=("data.dataset=ssv2", "model.backbone=ViT-B-16", "data.frames=8"),
    columns=(Column("fraction", "Training data (%)"), Column("top1", "Top-1 (%)", "val_top1_best")),
    rows=tuple(
        row(f"{name} {percent}%", f"{overrides} data.train_fraction={percent / 100:g}", fraction=percent, top1=None)
        for name, overrides in MODELS
        for percent in FRACTIONS
    ),
    references=(
        reference("TDS-CLIP minus EVL-B/16 at 5%", gap_5=25.9),
        reference("TDS-CLIP minus DiST-B/16 at 5%", gap_5=15.7),
        reference("TDS-CLIP minus Side4Video-B/16 at 5%", gap_5=2.7),
    ),
    protocol=SINGLE_VIEW,
    extra={"series": [name for name, _ in MODELS], "fractions": FRACTIONS},
    source="Section IV-C10 (the figure's points are not in the text; only the gaps at 5%)",
    notes=("Dataset assumed: Something-Something V2 (the paper does not say).",),
)
