"""Table XIII: implementation details, rendered from the presets themselves (tdsclip/presets.py)."""

from experiments.spec import Spec

# (label, config key or how a value is read) in the paper's row order, and the paper's cells per
# column (SSv1 B, SSv1 L, SSv2 B, SSv2 L, K400 B, K400 L); one value means all six.
ROWS = (
    ("dimension size", "model.side_width", ("320",)),
    ("difference frame number", "model.sme_window", ("5",)),
    ("pooling kernel shape", "model.td_kernel", ("3 1 1",)),
    ("optimizer", "optim", ("AdamW, weight decay=0.15, betas=[0.9, 0.999], schedule=Cosine",)),
    ("learning rate", "optim.lr", ("1e-3", "1e-4", "1e-3", "1e-4", "1e-3", "1e-4")),
    ("batch size", "train.batch_size", ("128 | 256 (two values for six columns; see tdsclip/presets.py)",)),
    ("epochs", "train.epochs", ("40", "30", "30", "30", "30", "30")),
    ("warmup epochs", "optim.warmup_epochs", ("4",)),
    ("seed", "train.seed", ("1024",)),
    ("training resize", "data.crop_area", ("RandomResizedCrop",)),
    ("label smoothing", "train.label_smoothing", ("0.1",)),
    ("repeated sampling", "data.num_sample", ("2",)),
    ("random augment", "data.randaugment", ("rand-m7-n4-mstd0.5-inc1",)),
    ("random flip", "data.flip", ("0.5",)),
    (
        "test views",
        "views",
        (
            "3 spatial 2 temporal",
            "3 spatial 2 temporal",
            "3 spatial 2 temporal",
            "3 spatial 2 temporal",
            "3 spatial 4 temporal",
            "3 spatial 4 temporal",
        ),
    ),
)
COLUMNS = (
    ("ssv1", "ViT-B-16"),
    ("ssv1", "ViT-L-14"),
    ("ssv2", "ViT-B-16"),
    ("ssv2", "ViT-L-14"),
    ("k400", "ViT-B-16"),
    ("k400", "ViT-L-14"),
)

SPEC = Spec(
    name="table13",
    title="Table XIII: implementation details",
    kind="presets",
    columns=(),
    extra={"rows": ROWS, "columns": COLUMNS},
    source="Table XIII; the epochs row prints four values for six columns (40 | 30 | 30 | 30), read as "
    "SSv1-B 40 and 30 elsewhere",
)
