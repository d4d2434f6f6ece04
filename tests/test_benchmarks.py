"""benchmarks.run, reduced to one round of one frame and one video per type: the JSON's contract.

No timing thresholds here: the targets are the benchmark's to print, not the tests' to assert.
"""

import json
import math

import pytest
from helpers import run_python

REQUIRED = (
    "step_ratio",
    "step_ratio_vs_conv_baseline",
    "step_ratio_st_adapter",
    "step_ratio_full_ft",
    "backbone_saved_bytes",
    "activation_ratio_vs_conv_baseline",
    "activation_ratio_vs_st_adapter",
    "activation_ratio_vs_full_ft",
    "decode_speedup",
    "resize_speedup",
    "resize_clips_per_s_720p",
    "resize_clips_per_s_320",
    "breakdown_step_ratio",
    "breakdown_flop_floor_ratio",
)


@pytest.mark.slow
def test_quick_run_writes_every_required_key(tmp_path, monkeypatch):
    from benchmarks.run import main

    monkeypatch.setenv("TDSCLIP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run.json"
    assert (
        main(
            [
                "--quick",
                "--threads",
                "1",
                "--repeats",
                "1",
                "--frames",
                "1",
                "--videos",
                "1",
                "--json",
                str(out),
                "--results-dir",
                str(tmp_path / "results"),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    for key in REQUIRED:
        assert isinstance(result[key], (int, float)) and math.isfinite(result[key]), key
    assert all(result[key] > 0 for key in REQUIRED if key.startswith(("step", "decode", "resize", "breakdown")))
    assert result["breakdown_flop_floor_ratio"] > 1, "a step does the frozen forward's multiply-adds and more"
    breakdown = result["sections"]["breakdown"]["details"]["ms"]
    assert breakdown["side_backward"]["matmul"] > 0 and breakdown["frozen_forward"]["matmul"] > 0
    assert result["backbone_saved_bytes"] == 0, "the frozen CLIP keeps nothing for backward"
    assert 1.0 <= result["activation_ratio_vs_conv_baseline"] < 1.5
    assert result["activation_ratio_vs_conv_baseline_plain"] > result["activation_ratio_vs_conv_baseline"]
    assert 0 < result["activation_ratio_vs_full_ft"] < result["activation_ratio_vs_st_adapter"] < 1
    assert set(result["sections"]) == {"step", "activation", "breakdown", "data", "suite"}
    assert result["dry_run_max_s"] > 0 and result["report_1000_runs_s"] > 0 and result["report_records"] >= 50
    assert result["help_max_s"] > result["interpreter_start_s"] > 0
    assert result["machine"]["threads"] == 1 and result["machine"]["torch"]

    quick_file = next((tmp_path / "results").glob("*-quick.json"))
    assert json.loads(quick_file.read_text())["step_ratio"] == result["step_ratio"]
    assert main(["--quick", "--sections", "activation", "--results-dir", str(tmp_path / "results")]) == 0
    merged = json.loads(quick_file.read_text())
    assert set(merged["sections"]) == {"step", "activation", "breakdown", "data", "suite"}, (
        "a rerun of one section keeps the others"
    )
    assert merged["step_ratio"] == result["step_ratio"] and merged["quick"]
    assert main(["--sections", "activation", "--results-dir", str(tmp_path / "results")]) == 0
    assert json.loads(quick_file.read_text()) == merged, "a full run leaves the quick run's file alone"
    full = json.loads(quick_file.with_name(quick_file.name.replace("-quick", "")).read_text())
    assert set(full["sections"]) == {"activation"} and not full["quick"]


def test_gpu_without_cuda_and_bad_arguments_are_one_line_errors():
    gpu = run_python("import sys; from benchmarks.run import main; sys.exit(main(['--gpu']))")
    assert gpu.returncode == 2
    assert gpu.stderr.startswith("error: --gpu: CUDA is not available here") and gpu.stderr.count("\n") == 1
    bad = run_python("import sys; from benchmarks.run import main; sys.exit(main(['--sections', 'stpe']))")
    assert (
        bad.returncode == 2
        and bad.stderr.strip()
        == "error: unknown section 'stpe'; expected one of step, activation, breakdown, data, suite, gpu"
    )


def test_breakdown_puts_each_op_in_its_class():
    from benchmarks.breakdown import op_class

    classes = {
        "aten::addmm": "matmul",
        "aten::mm": "matmul",
        "aten::_scaled_dot_product_flash_attention_for_cpu_backward": "attention",
        "aten::_native_multi_head_attention": "attention",
        "aten::convolution_backward": "convolution",
        "aten::mkldnn_convolution": "convolution",
        "aten::native_batch_norm_backward": "normalisation",
        "aten::native_layer_norm": "normalisation",
        "aten::copy_": "copies/layout",
        "aten::cat": "copies/layout",
        "aten::gelu_backward": "elementwise",
        "aten::max_pool3d_with_indices": "elementwise",
        "aten::_foreach_mul_": "elementwise",
        "aten::empty": "other",
    }
    assert {name: op_class(name) for name in classes} == classes
