"""Make `import torchvision` (and so `import open_clip`) work next to a CPU-only torch build.

Why: the only torchvision 0.28.0 on the package registry is a CUDA build. Next to the CPU torch
its C++ extension (`torchvision/_C.so`) cannot load, and `torchvision/_meta_registrations.py`
then calls `torch.library.register_fake("torchvision::nms")` (and `qnms`) unguarded, which raises
`RuntimeError: operator torchvision::nms does not exist`. open_clip imports torchvision at import
time, so nothing in this project could load.

What: a one-shot import hook. When `torchvision` is first imported and torch is a CPU build, try
to load torchvision's `_C` extension exactly as torchvision would; only if that fails, define the
two operator schemas (no kernels) so the fake registrations succeed. Transforms and everything
open_clip uses then work; torchvision's own C++ ops (nms, roi_align, image decoding) still raise
when called, and nothing here calls them.

On a CUDA torch build the hook does nothing at all, and where `_C` loads it defines nothing. It is
installed in every Python process of the environment by `tdsclip_torchvision_cpu.pth` (so
DataLoader workers, spawned processes and Slurm jobs get it) and again by `import tdsclip`.

Why a top-level module and not part of `tdsclip`: the .pth runs at interpreter start, before the
working directory is on sys.path. Had it imported `tdsclip`, the library would be fixed for the
whole process to the checkout the venv was installed from, so with two checkouts sharing one venv
a command run in the second would silently use the first one's library. This module imports only
the standard library (torch when torchvision is first imported), never `tdsclip`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

# Schemas as torchvision's C++ sources declare them (torchvision/csrc/ops/nms.cpp, qnms in
# quantized/cpu). Only their existence matters: no kernel is registered behind them.
_FALLBACK_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor",
)
_fallback_library = None  # keeps the torch.library.Library alive for the whole process


def _torchvision_extension_loads() -> bool:
    """Load torchvision's `_C` extension the way torchvision does; False when it cannot load."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision installed: nothing to fix
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    candidates = [package_dir / f"_C{suffix}" for suffix in suffixes]
    library = next((path for path in candidates if path.is_file()), None)
    if library is None:
        return False
    try:
        torch.ops.load_library(str(library))
    except OSError:
        return False
    return True


def define_missing_ops() -> bool:
    """Define the fallback schemas when needed; returns True if it defined them."""
    global _fallback_library
    import torch

    if torch.version.cuda is not None or torch.version.hip is not None:
        return False  # a GPU build of torch: leave everything exactly as it is
    if _fallback_library is not None or _torchvision_extension_loads():
        return False
    library = torch.library.Library("torchvision", "DEF")
    for schema in _FALLBACK_SCHEMAS:
        library.define(schema)
    _fallback_library = library
    return True


class _TorchvisionImportHook(importlib.abc.MetaPathFinder):
    """Runs `define_missing_ops` just before torchvision's first import, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: D401 - importlib protocol
        if fullname == "torchvision":
            uninstall()
            define_missing_ops()
        return None  # let the normal finders import it


def install() -> None:
    """Arm the hook (idempotent). Cheap: imports nothing until torchvision is imported."""
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(finder, _TorchvisionImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionImportHook())


def uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchvisionImportHook)]
