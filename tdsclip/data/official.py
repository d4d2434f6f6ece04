"""The official split sizes of the paper's datasets, for cost estimates before any data is read
and for reports that compare the videos a run evaluated with the official count.

Something-Something V1: 86,017 training and 11,522 validation videos; V2: 168,913 and 24,777
(the owners' split files); Kinetics-400: 240,436 and 19,796 videos as listed in the original
release's CSVs (downloadable copies today hold fewer, which the reports show).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tdsclip.config import RunConfig

OFFICIAL_VIDEOS: dict[str, tuple[int, int]] = {
    "ssv1": (86_017, 11_522),
    "ssv2": (168_913, 24_777),
    "k400": (240_436, 19_796),
}


def video_counts(cfg: RunConfig) -> tuple[int, int] | None:
    """(training videos the run uses, validation videos), or None when unknown before reading data."""
    data = cfg.data
    if data.dataset == "synthetic":
        val_per_class = max(1, round(data.synthetic_videos_per_class / 4))
        train, val = (
            (data.synthetic_videos_per_class - val_per_class) * data.synthetic_classes,
            val_per_class * data.synthetic_classes,
        )
    elif data.dataset in OFFICIAL_VIDEOS:
        train, val = OFFICIAL_VIDEOS[data.dataset]
    else:
        return None
    return max(1, round(train * data.train_fraction)), val
