"""Table I: Something-Something V1 and V2, TDS-CLIP B/16 and L/14 at 8 and 16 frames, 3x2 views.

Our rows are one run per dataset; the other methods' rows are the paper's numbers (SSv1 / SSv2).
"""

from experiments._reference import read
from experiments.spec import MULTI_VIEW, Column, Spec, reference, row

COLUMNS = (
    Column("pretrain", "Pre-train"),
    Column("views", "Frames x Cr. x Cl."),
    Column("tflops", "TFLOPs x views", "measured:tflops_x_views"),
    Column("top1", "Top-1 (%)", "test_top1"),
    Column("top5", "Top-5 (%)", "test_top5"),
)

# method, group, pre-train, frames/crops/clips cell, TFLOPs cell, SSv1 top-1, top-5, SSv2 top-1, top-5
_OTHERS = (
    ("ViViT-L", "Full fine-tuning", "IN-21K", "3234", "1.012", None, None, 65.9, 89.9),
    ("Video Swin-B", "Full fine-tuning", "IN-21K", "3231", "0.33", None, None, 69.6, 92.7),
    ("MViT-B", "Full fine-tuning", "Kinetics-600", "3231", "0.23", None, None, 68.7, 91.5),
    ("UniFormer V2-L/14", "Full fine-tuning", "CLIP-400M", "1631", "0.93", 60.5, 86.5, 72.1, 93.6),
    ("ILA-ViT-L/14", "Full fine-tuning", "CLIP-400M", "1634", "0.912", None, None, 67.8, 90.5),
    ("S-ViT-B/16", "Full fine-tuning", "CLIP-400M", "3232", "0.36", None, None, 69.3, 92.1),
    ("STAN-B/16", "Full fine-tuning", "CLIP-400M", "1631", "0.71", None, None, 69.5, 92.7),
    ("EVL-L/14", "Frozen CLIP", "CLIP-400M", "831", "0.83", None, None, 65.1, None),
    ("ST-Adapter-L/14", "Frozen CLIP", "CLIP-400M", "1631", "1.43", None, None, 71.9, 93.4),
    ("DUALPATH-L/14", "Frozen CLIP", "CLIP-400M", "1631", "0.53", None, None, 70.2, 92.7),
    ("AIM-L/14", "Frozen CLIP", "CLIP-400M", "1631", "1.93", None, None, 69.4, 92.3),
    ("DiST-L/14", "Frozen CLIP", "CLIP-400M", "1631", "1.43", None, None, 72.5, 93.0),
    ("M2-CLIP-B/16", "Frozen CLIP", "CLIP-400M", "3231", "0.83", None, None, 69.1, None),
    ("Side4Video-B/16", "Frozen CLIP", "CLIP-400M", "1632", "0.46", 60.7, 86.0, 71.5, 92.8),
)

# ours: name, overrides, frames/crops/clips cell, TFLOPs cell, (SSv1 top-1, top-5), (SSv2 top-1, top-5)
_OURS = (
    ("TDS-CLIP-B/16 8f", "model.backbone=ViT-B-16 data.frames=8", "832", "0.26", (60.1, 85.4), (71.8, 93.0)),
    ("TDS-CLIP-B/16 16f", "model.backbone=ViT-B-16 data.frames=16", "1632", "0.46", (61.0, 86.3), (72.1, 93.3)),
    ("TDS-CLIP-L/14 8f", "model.backbone=ViT-L-14 data.frames=8", "832", "0.86", (63.0, 87.8), (73.4, 93.8)),
    ("TDS-CLIP-L/14 16f", "model.backbone=ViT-L-14 data.frames=16", "1632", "1.66", (64.1, 88.2), (74.1, 94.0)),
)

SPEC = Spec(
    tolerance=1.0,  # multi-view, other hardware and data copies: within one point
    name="table1",
    title="Table I: comparison on Something-Something V1 and V2",
    kind="runs",
    columns=COLUMNS,
    protocol=MULTI_VIEW,
    extra={"released": True},  # its TDS-CLIP rows have released checkpoints (experiments/released.py)
    base=("data.test_crops=3", "data.test_clips=2"),
    rows=tuple(
        row(
            f"{name} {label}",
            f"{overrides} data.dataset={dataset}",
            pretrain="CLIP-400M",
            views=read(fv, tf)[0],
            tflops=read(fv, tf)[1],
            top1=scores[0],
            top5=scores[1],
        )
        for dataset, label, index in (("ssv1", "SSv1", 4), ("ssv2", "SSv2", 5))
        for name, overrides, fv, tf, *both in _OURS
        for scores in [both[index - 4]]
    ),
    references=tuple(
        reference(
            name,
            group,
            pretrain=pre,
            views=read(fv, tf)[0],
            tflops=read(fv, tf)[1],
            ssv1_top1=a,
            ssv1_top5=b,
            ssv2_top1=c,
            ssv2_top5=d,
        )
        for name, group, pre, fv, tf, a, b, c, d in _OTHERS
    ),
    source="Table I; TFLOPs x views and Frames x crops x clips read from cells that lost their separators "
    "(experiments/_reference.py)",
)
