"""Reading the comparison tables' cells, which lost their separators in the text extraction.

"FramesCr.Cl." cells read as frames, crops, clips run together ("832" is 8 x 3 x 2, "32310" is
32 x 3 x 10) and TFLOPs cells as TFLOPs per view then the number of views ("0.26" is 0.2 x 6,
"1.012" is 1.0 x 12): the split chosen is the one whose crops x clips ends the TFLOPs cell.
Where none does, the TFLOPs cell is kept as printed.
"""

from __future__ import annotations


def _splits(cell: str) -> list[tuple[int, int, int]]:
    out = []
    for clip_digits in (1, 2):
        frames, crops, clips = cell[: -(1 + clip_digits)], cell[-(1 + clip_digits)], cell[-clip_digits:]
        if frames and int(crops) and int(clips) and not clips.startswith("0"):
            out.append((int(frames), int(crops), int(clips)))
    return out


def read(frames_cell: str, tflops_cell: str) -> tuple[str, str]:
    """('832', '0.26') -> ('8x3x2', '0.2x6'); ('32310', '0.630') -> ('32x3x10', '0.6x30')."""
    splits = _splits(frames_cell)
    for frames, crops, clips in splits:
        count = str(crops * clips)
        head = tflops_cell[: -len(count)]
        if tflops_cell.endswith(count) and head and head[-1].isdigit():
            return f"{frames}x{crops}x{clips}", f"{head}x{count}"
    frames, crops, clips = splits[0]
    return f"{frames}x{crops}x{clips}", f"{tflops_cell} (as printed)"
