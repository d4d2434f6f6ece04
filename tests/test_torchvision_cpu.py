"""`import open_clip` works with the CPU torch in every process, and the fix is inert elsewhere."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib
import torch
from helpers import REPO, run_python


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


@pytest.mark.slow  # four interpreters import torch and open_clip
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

    import tdsclip_torchvision_cpu as shim

    needed = torch.version.cuda is None and not shim._torchvision_extension_loads()
    assert (shim._fallback_library is not None) == needed
    if needed:
        # the schemas exist without kernels: calling torchvision's C++ ops still fails loudly
        with pytest.raises(NotImplementedError, match="torchvision::nms"):
            torch.ops.torchvision.nms(torch.rand(2, 4), torch.rand(2), 0.5)


def test_hook_is_inert_on_a_cuda_torch_build():
    result = run_python(
        textwrap.dedent("""
        import torch
        torch.version.cuda = "13.0"   # what a CUDA build reports
        import tdsclip_torchvision_cpu as shim
        assert shim.define_missing_ops() is False
        assert shim._fallback_library is None
        assert not hasattr(torch.ops.torchvision, "nms")
    """)
    )
    # on a CUDA build nothing is defined: torchvision's own import path is left exactly as it is
    assert result.returncode == 0, result.stderr


def _checkout(root: Path) -> Path:
    """The library and the shim module as a checkout holds them."""
    root.mkdir()
    shutil.copytree(REPO / "tdsclip", root / "tdsclip", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "tdsclip_torchvision_cpu.py", root)
    return root


def test_two_checkouts_sharing_one_venv_each_use_their_own_library(tmp_path):
    """The venv is installed editable from checkout `a`; a command run in checkout `b` (its working
    directory, or PYTHONPATH) must get b's tdsclip, and open_clip must import everywhere."""
    a, b = _checkout(tmp_path / "a"), _checkout(tmp_path / "b")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    found = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    site = Path(found.stdout.strip())
    # What `pip install -e a` writes (hatchling's dev-mode-dirs, then the force-included .pth) ...
    (site / "_tdsclip.pth").write_text(f"{a}\n")
    shutil.copy(REPO / "tdsclip_torchvision_cpu.pth", site)
    # ... and the dependencies (torch, open_clip) from this environment, as plain path lines.
    deps = [p for p in sys.path if p and Path(p).is_dir() and not (Path(p) / "tdsclip").exists()]
    (site / "zz_dependencies.pth").write_text("".join(f"{p}\n" for p in deps))

    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(code: str, cwd: Path, **extra: str) -> str:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd, env={**env, **extra})
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
        return done.stdout.strip()

    where = "import tdsclip; print(tdsclip.__file__)"  # light: tdsclip imports neither torch nor open_clip
    for checkout in (a, b):
        assert run(where, cwd=checkout) == str(checkout / "tdsclip" / "__init__.py")
        assert run(where, cwd=tmp_path, PYTHONPATH=str(checkout)) == str(checkout / "tdsclip" / "__init__.py")
    # open_clip imports beside the library of the checkout the venv was not installed from ...
    assert run(f"{where}; import open_clip", cwd=b) == str(b / "tdsclip" / "__init__.py")
    # ... and with the .pth alone arming the shim, tdsclip never imported
    assert run("import sys, open_clip; print('tdsclip' in sys.modules)", cwd=tmp_path) == "False"


def test_the_wheel_ships_the_shim_module_beside_its_pth():
    """A non-editable install must carry the module the .pth imports (editable ones find it at the
    checkout's root); the .pth must import nothing else."""
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "tdsclip_torchvision_cpu.py" in wheel["only-include"]
    assert wheel["force-include"] == {"tdsclip_torchvision_cpu.pth": "tdsclip_torchvision_cpu.pth"}
    pth = (REPO / "tdsclip_torchvision_cpu.pth").read_text()
    assert pth == "import tdsclip_torchvision_cpu; tdsclip_torchvision_cpu.install()\n"
