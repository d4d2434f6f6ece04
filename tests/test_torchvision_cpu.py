"""`import open_clip` works with the CPU torch in every process, and the fix is inert elsewhere."""

import textwrap

import pytest
import torch
from helpers import run_python


def test_fresh_interpreter_imports_open_clip_without_importing_tdsclip():
    result = run_python(
        textwrap.dedent("""
        import sys
        import open_clip
        import torch, torchvision.transforms.v2 as T
        assert "tdsclip.config" not in sys.modules
        print(T.RandomResizedCrop(32)(torch.rand(3, 48, 64)).shape)
    """)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch.Size([3, 32, 32])"


def test_spawned_worker_processes_import_open_clip(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(
        textwrap.dedent("""
        import multiprocessing as mp
        import torch
        from torch.utils.data import DataLoader, Dataset

        class Frames(Dataset):
            def __len__(self):
                return 2
            def __getitem__(self, index):
                import open_clip  # inside the worker process
                return torch.tensor(index)

        def child(_):
            import open_clip
            return open_clip.__version__

        if __name__ == "__main__":
            with mp.get_context("spawn").Pool(1) as pool:
                print(pool.map(child, [0])[0])
            loader = DataLoader(Frames(), num_workers=1, multiprocessing_context="spawn")
            print(sum(int(x) for x in loader))
    """)
    )
    result = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3.3.0", "1"]


def test_fallback_ops_exist_only_because_the_extension_cannot_load():
    import torchvision  # noqa: F401 - the import itself is what is tested

    from tdsclip import _torchvision_cpu

    needed = torch.version.cuda is None and not _torchvision_cpu._torchvision_extension_loads()
    assert (_torchvision_cpu._fallback_library is not None) == needed
    if needed:
        # the schemas exist without kernels: calling torchvision's C++ ops still fails loudly
        with pytest.raises(NotImplementedError, match="torchvision::nms"):
            torch.ops.torchvision.nms(torch.rand(2, 4), torch.rand(2), 0.5)


def test_hook_is_inert_on_a_cuda_torch_build():
    result = run_python(
        textwrap.dedent("""
        import torch
        torch.version.cuda = "13.0"   # what a CUDA build reports
        from tdsclip import _torchvision_cpu
        assert _torchvision_cpu.define_missing_ops() is False
        assert _torchvision_cpu._fallback_library is None
        assert not hasattr(torch.ops.torchvision, "nms")
    """)
    )
    # on a CUDA build nothing is defined: torchvision's own import path is left exactly as it is
    assert result.returncode == 0, result.stderr
