"""`colorgan bench` at a toy size: the record, the report, FLOP scaling and the peak table.

The torch.compile variants ('compile', 'all') are left out here: compiling takes minutes on a
2-core CPU. `make bench` measures them.
"""

import json
from pathlib import Path

import pytest
import torch

from colorgan.cli import main
from colorgan.method.models import build_vgg19_features
from colorgan.method.step import ColorGANStep
from colorgan.performance import bench, bench_report, devices, timing
from colorgan.performance.bench_config import BenchConfig

TINY_MODEL = {"gen_width": 8, "gen_max_width": 16, "vgg_layer": "relu2_2", "noise_channels": 4, "noise_width": 8,
              "noise_layers": 2, "disc_width": 8, "disc_layers": 2}
VARIANTS = "channels_last,bf16,fused_adam,vgg_twice"


def test_bench_writes_json_and_markdown(tmp_path: Path, capsys):
    args = ["bench", "--image-size", "16", "--batch-size", "2", "--num-steps", "1", "--num-warmup", "1", "--max-warmup", "1",
            "--no-conv-reference",
            "--variants", VARIANTS, "--pipeline-size", "32", "--pipeline-images", "8", "--pipeline-batches", "4",
            "--model-params", json.dumps(TINY_MODEL), "--output-dir", str(tmp_path), "--tag", "toy"]
    assert main(args) == 0
    [json_path] = tmp_path.glob("cpu-*-toy.json")
    record = json.loads(json_path.read_text())
    assert set(record["variants"]) == {"fp32_eager", *VARIANTS.split(",")} and not record["failed"]
    assert record["variants"]["fp32_eager"]["speedup"] == 1.0
    for variant in record["variants"].values():
        assert variant["images_per_s"] > 0 and variant["inference_images_per_s"] > 0
        assert set(variant["parts_ms"]) == {"generator", "critic", "vgg", "rest"}
        assert variant["mfu"] is None  # CPU: no peak to compare with
        assert variant["projected_paper_hours"] > 0
    assert record["variants"]["bf16"]["precision"] == "bf16"
    assert record["flops"]["train_per_image_at_256"] == pytest.approx(256 ** 2 / 16 ** 2 * record["flops"]["train_per_image"])
    assert record["pipeline"]["images_per_s"] > 0 and record["memory"]["process_peak_rss_bytes"] > 0
    assert record["profile"]["top"] and 0 < record["profile"]["conv_matmul_share"] <= 1
    assert {"git_commit", "versions", "device", "image_size", "batch_size"} <= set(record)

    report = json_path.with_suffix(".md").read_text()
    assert report.startswith("# ColorGAN speed: cpu")
    assert "| variant | images/s | × fp32 eager |" in report and "**Input pipeline**" in report
    assert "**Paper protocol** (4,623,900 image-steps)" in report
    assert all(f"| {name}" in report for name in record["variants"])
    assert "ColorGAN speed" in capsys.readouterr().out


def test_flops_grow_with_the_pixel_count():
    counts = []
    vgg = build_vgg19_features("random", TINY_MODEL["vgg_layer"], seed=0)
    for size in (16, 32):
        cfg = BenchConfig(model_params=json.dumps(TINY_MODEL), batch_size=2).model_config(size)
        step = ColorGANStep(cfg, torch.device("cpu"), vgg)
        batch = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
        counts.append(timing.count_flops(lambda: step(batch)))
    assert counts[1] == 4 * counts[0]  # so projecting to 256² by (256/S)² is exact for FLOPs


def test_paper_protocol_projection():
    hours_at_256 = bench.paper_protocol_hours(1000.0, 256)
    assert hours_at_256 == pytest.approx(300 * 15413 / 1000 / 3600)
    assert bench.paper_protocol_hours(1000.0, 128) == pytest.approx(4 * hours_at_256)


@pytest.mark.parametrize("name, bf16", [("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA L4", 121.0), ("NVIDIA L40S", 362.1),
                                        ("NVIDIA GeForce RTX 4090", 165.2)])
def test_peak_table(name, bf16):
    assert devices.peak_tflops(name)["bf16"] == bf16


def test_cpu_and_unknown_devices_have_no_peak():
    assert devices.peak_tflops("cpu AMD EPYC (2 threads)") is None and devices.peak_tflops("Some GPU") is None
    assert bench_report.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"


@pytest.mark.parametrize("changes, message", [
    ({"variants": "fp32_eager,turbo"}, r"variants: \['turbo'\] unknown"),
    ({"pipeline_images": 4, "batch_size": 16}, "pipeline_images: 4 is fewer than batch_size=16"),
    ({"model_params": '{"gen_widht": 8}'}, r"'gen_widht' \(did you mean 'gen_width'\?\)"),
    ({"image_size": 60}, "image_size: 60 must be divisible by 8"),
    ({"num_steps": -1}, "num_steps: -1 is below the minimum 0"),
])
def test_bench_config_is_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        BenchConfig(**changes)


# docs/speed.md's bench table: each committed record in results/bench/ and its row's workload label.
README_BENCH_ROWS = {
    "cpu-intel-r-xeon-r-processor-2-threads.json": "paper widths, 32², batch 8 (`make bench`)",
    "cpu-intel-r-xeon-r-processor-2-threads-smoke-widths-64px.json":
        "smoke/study widths, 64², batch 16 (`--tag smoke-widths-64px`)",
}


def test_the_speed_page_bench_table_matches_the_committed_records():
    root = Path(__file__).resolve().parents[1]
    readme = (root / "docs" / "speed.md").read_text()
    assert {p.name for p in (root / "results" / "bench").glob("*.json")} == set(README_BENCH_ROWS)
    for name, workload in README_BENCH_ROWS.items():
        record = json.loads((root / "results" / "bench" / name).read_text())
        row = bench_report.readme_row(workload, record)
        assert row in readme, f"docs/speed.md's bench row for {name} should read:\n{row}"
