"""`colorgan gpu-check --tiny`: the GPU check's code, at toy sizes on the CPU, so it never rots."""

import json
from pathlib import Path

import pytest

from colorgan import gpu_check
from colorgan.cli import main
from colorgan.config import GpuCheckConfig


@pytest.mark.slow
def test_tiny_gpu_check_runs_every_section(tmp_path: Path, capsys):
    assert main(["gpu-check", "--tiny", "--output-dir", str(tmp_path), "--time-budget-minutes", "60"]) == 0
    [json_path] = tmp_path.glob("cpu-*-tiny.json")
    record = json.loads(json_path.read_text())
    sections = record["sections"]
    assert record["ok"] and set(sections) == {"switches", "methods", "ddp", "bench"}
    switches = sections["switches"]["switches"]
    assert set(switches) == {"bf16", "channels_last", "fused_adam"} and all(s["ok"] for s in switches.values())
    assert switches["channels_last"]["tolerance"] == 0.02 and switches["bf16"]["tolerance"] == 0.15
    assert "compile" in sections["switches"]["not_checked"]
    methods = sections["methods"]["methods"]
    assert set(methods) == {"colorgan", "chromagan", "coltran"}
    for m in methods.values():
        assert m["ok"] and m["steps"] == 4 and m["eval_images"] == 4 and m["projected_paper_hours"] > 0
    ddp = sections["ddp"]
    assert ddp["backend"] == "gloo" and ddp["world_size"] == 1 and ddp["resumed_from"] == 2 and ddp["steps"] == 4
    assert ddp["max_weight_difference"] == 0.0  # torchrun + resume trains exactly like one uninterrupted process
    run = sections["bench"]["runs"]["b4"]
    assert set(run["variants"]) == {"fp32_eager", "bf16"} and Path(run["report"]).is_file()
    assert set(sections["bench"]["projected_paper_hours"]) == {"colorgan", "chromagan", "coltran"}
    page = json_path.with_suffix(".md").read_text()
    assert page.startswith("# GPU check: cpu") and "## switches: ok" in page and "## ddp: ok" in page
    assert "| goal | target | measured | met |" in page and "wrote" in capsys.readouterr().out


def test_a_broken_section_is_reported_and_fails_the_check(monkeypatch, tmp_path: Path):
    def broken(*args):
        raise RuntimeError("no NCCL here")

    monkeypatch.setattr(gpu_check, "check_switches", lambda cfg, device: {"ok": True})
    monkeypatch.setattr(gpu_check, "check_methods", lambda cfg, methods, device, work: {"ok": True})
    monkeypatch.setattr(gpu_check, "check_ddp", broken)
    record = gpu_check.run_gpu_check(GpuCheckConfig(tiny=True, bench=False, output_dir=str(tmp_path)), {})
    assert record["ok"] is False and record["sections"]["ddp"]["error"] == "RuntimeError: no NCCL here"
    record["sections"] = {"ddp": record["sections"]["ddp"]}  # the stand-ins above hold no tables to show
    assert "## ddp: FAILED" in gpu_check.format_markdown(record)


def test_sections_past_the_time_budget_are_skipped(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(gpu_check, "check_switches", lambda cfg, device: {"ok": True})
    record = gpu_check.run_gpu_check(GpuCheckConfig(tiny=True, time_budget_minutes=0.0, output_dir=str(tmp_path)), {})
    assert "time budget" in record["sections"]["methods"]["skipped"]
    assert "## bench: skipped" in gpu_check.format_markdown(record)


@pytest.mark.parametrize("changes, message", [
    ({"switches": "bf16,warp"}, r"switches: \['warp'\] unknown"),
    ({"large_batch_variants": "turbo"}, r"large_batch_variants: \['turbo'\] unknown"),
    ({"bf16_tolerance": -1.0}, "bf16_tolerance: -1.0 is below the minimum 0"),
])
def test_gpu_check_config_is_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        GpuCheckConfig(**changes)


def test_sizes_resolve_for_the_gpu_and_the_tiny_form():
    assert (GpuCheckConfig().resolved().image_size, GpuCheckConfig().resolved().batch_size) == (256, 16)
    tiny = GpuCheckConfig(tiny=True).resolved()
    assert (tiny.image_size, tiny.batch_size, tiny.num_steps) == (32, 4, 4)
    assert gpu_check.model_params(GpuCheckConfig(), "coltran") == {"spatial_batch_size": 4}
