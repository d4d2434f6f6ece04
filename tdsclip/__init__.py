"""tdsclip: TDS-CLIP (temporal difference side network over a frozen CLIP ViT), the library.

Knows nothing of paper tables, Slurm, sweeps or reports: those packages import this one.
"""

import tdsclip_torchvision_cpu

# Also armed by tdsclip_torchvision_cpu.pth at interpreter start; repeated here so that a process
# importing tdsclip before open_clip works even where the .pth file is not installed.
tdsclip_torchvision_cpu.install()

__version__ = "0.1.0"
