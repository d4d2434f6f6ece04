"""What the ablation tables share (Section IV-C: ViT-B/16, 8 frames, Something-Something V1,
single-view validation top-1), and the full model's overrides that several tables reuse."""

from experiments.spec import SINGLE_VIEW, Column

SETTING = ("data.dataset=ssv1", "model.backbone=ViT-B-16", "data.frames=8")
TOP1 = (Column("top1", "Top-1 (%)", "val_top1_best"),)
PROTOCOL = SINGLE_VIEW
SOURCE = "Section IV-C: ViT-B/16, 8 frames, SSv1; the paper's ablations read as single-view validation top-1"

BASELINE = "model.temporal=conv3d model.sme_window=1"
"""Table III's baseline: the side network with the plain 3D conv branch (Side4Video's design)."""
TD_ONLY = "model.temporal=td model.sme_window=1"
FULL = "model.temporal=td"
"""TDS-CLIP: TD-Adapter and SME-Adapter with the preset's m (the paper's 5; smoke's 3); one run
shared by Tables I, III-IX, XI and Fig. 5."""
