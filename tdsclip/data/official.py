"""The official split sizes of the paper's datasets, for cost estimates before any data is read
and for reports that compare the videos a run evaluated with the official count.

Something-Something V1: 86,017 training and 11,522 validation videos; V2: 168,913 and 24,777
(the owners' split files); Kinetics-400: 240,436 and 19,796 videos as listed in the original
release's CSVs (downloadable copies today hold fewer, which the reports show).
"""

OFFICIAL_VIDEOS: dict[str, tuple[int, int]] = {
    "ssv1": (86_017, 11_522),
    "ssv2": (168_913, 24_777),
    "k400": (240_436, 19_796),
}
