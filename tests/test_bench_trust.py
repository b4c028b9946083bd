"""`colorgan bench` on a shared machine: warm-up until step times settle, spread, machine load (flagged or
refused), the CPU's bf16 hardware, and the convolution-stack reference the step's FLOP/s is compared with."""

import json
from pathlib import Path

import pytest
import torch

from colorgan.cli import main
from colorgan.performance import bench, bench_report, devices, timing
from colorgan.performance.bench_config import BenchConfig
from tests.test_bench import TINY_MODEL

CPU = torch.device("cpu")


def test_settled_needs_a_full_window_within_tolerance():
    assert not timing.settled([1.0, 1.0], 3, 0.1)
    assert timing.settled([5.0, 1.0, 1.05, 0.98], 3, 0.1)
    assert not timing.settled([1.0, 1.3, 1.0], 3, 0.1)


def test_warm_up_continues_until_step_times_settle(monkeypatch):
    times = iter([9.0, 4.0, 2.0, 1.0, 1.02, 0.99, 1.0, 1.0])  # oneDNN building kernels, then steady
    monkeypatch.setattr(timing, "timed", lambda fn, device: next(times))
    cfg = BenchConfig(num_warmup=2, max_warmup=12, settle_window=3, settle_tolerance=0.1)
    record = timing.warm_until_settled(lambda: None, cfg, CPU)
    assert record == {"seconds": pytest.approx(18.01), "steps": 6, "settled": True}
    times = iter([3.0, 1.0, 2.0, 1.0])
    assert timing.warm_until_settled(lambda: None, cfg.replace(max_warmup=4), CPU)["settled"] is False


def test_spread_is_the_interquartile_range_over_the_median():
    assert timing.spread([1.0, 1.0, 1.0]) == 0.0
    assert timing.spread([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx((4.0 - 2.0) / 3.0)


def test_load_from_other_processes_is_flagged_on_cpu_only():
    cfg = BenchConfig(max_other_load=0.5)
    quiet = timing.machine_load(0.3, [1.2, 2.1, 2.3], 2.2, 2, cfg, CPU)  # our 2 threads ramp the load up to ~2
    assert not quiet["under_load"] and quiet["others_max"] == pytest.approx(0.3)
    busy = timing.machine_load(0.3, [2.5, 3.6], 3.4, 2, cfg, CPU)
    assert busy["under_load"] and busy["others_max"] == pytest.approx(1.6)
    assert timing.machine_load(3.0, [3.0], 3.0, 2, cfg, CPU)["under_load"]  # busy before we started
    assert not timing.machine_load(9.0, [9.0], 9.0, 2, cfg, torch.device("cuda"))["under_load"]


def test_a_busy_machine_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(bench.os, "getloadavg", lambda: (3.5, 3.0, 2.0))
    with pytest.raises(RuntimeError, match=r"machine busy: the 1-min load average is 3.50 .*max_other_load=0.5"):
        bench.run_bench(BenchConfig(device="cpu", refuse_under_load=True))


def test_cpu_bf16_support_reads_the_cpu_flags():
    support = devices.cpu_bf16_support()
    assert set(support) == {"native", "flags", "torch_capability"}
    assert set(support["flags"]) <= {"avx512_bf16", "amx_bf16"}
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    assert ("avx512_bf16" in flags.split()) == ("avx512_bf16" in support["flags"])
    assert support["native"] == (bool(support["flags"]) or "AMX" in support["torch_capability"])


@pytest.mark.slow
def test_bench_reports_conv_reference_spread_and_load(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(bench.os, "getloadavg", lambda: (6.0, 6.0, 6.0))  # as if other agents loaded the machine
    args = ["bench", "--image-size", "16", "--batch-size", "2", "--num-steps", "3", "--num-warmup", "1",
            "--max-warmup", "2", "--variants", "bf16", "--no-breakdown", "--no-profile", "--pipeline-size", "32",
            "--pipeline-images", "8", "--pipeline-batches", "2", "--model-params", json.dumps(TINY_MODEL),
            "--output-dir", str(tmp_path)]
    assert main(args) == 0
    [json_path] = tmp_path.glob("cpu-*.json")
    record = json.loads(json_path.read_text())
    conv, load = record["conv_reference"], record["device"]["load_average_1min"]
    assert conv["flops"] == 4 * 2 * 16 * 64 * 64 * 64 * 64 * 9 * 3 - 2 * 16 * 64 * 64 * 64 * 64 * 9  # no dgrad of layer 1
    assert conv["fp32"]["flops_per_s"] > 0 and conv["bf16"]["flops_per_s"] > 0
    assert load["under_load"] and load["others_max"] == pytest.approx(6.0)
    for variant in record["variants"].values():
        assert variant["spread"] >= 0 and 1 <= variant["warmup_steps"] <= 2
        reference = conv["bf16" if variant["precision"] == "bf16" else "fp32"]["flops_per_s"]
        assert variant["conv_reference_fraction"] == pytest.approx(variant["achieved_flops_per_s"] / reference)
    assert record["device"]["cpu_bf16"] == devices.cpu_bf16_support()
    page = json_path.with_suffix(".md").read_text()
    assert "**Measured under load**" in page and "convolution-stack reference" in page and "| × conv stack |" in page
    assert ("bf16 in hardware" in page) == record["device"]["cpu_bf16"]["native"]
    assert ("no bf16 instructions" in page) != record["device"]["cpu_bf16"]["native"]


def test_dynamo_watch_counts_compiles_graph_breaks_and_eager_fallback():
    def broken(x):
        y = x.sin()
        torch._dynamo.graph_break()
        return y.cos()

    torch._dynamo.reset()
    with timing.DynamoWatch() as watch:
        torch.compile(broken, backend="eager")(torch.ones(3))
    assert watch.result["frames_compiled"] >= 1 and watch.result["graph_breaks"] == 1
    assert not watch.result["eager_fallback"]
    torch._dynamo.reset()
    double = torch.compile(lambda x: x * 2, backend="eager")
    with torch._dynamo.config.patch(recompile_limit=1), timing.DynamoWatch() as watch:
        for dtype in (torch.float32, torch.float64, torch.int64):  # each dtype needs its own graph
            double(torch.ones(3, dtype=dtype))
    assert watch.result["recompile_limit_hits"] >= 1 and watch.result["eager_fallback"]
    assert "recompile_limit" in watch.result["limit_messages"][0]
    torch._dynamo.reset()


def test_a_compiled_row_that_fell_back_to_eager_says_so():
    record = json.loads((Path(__file__).resolve().parents[1] / "results/bench"
                         / "cpu-intel-r-xeon-r-processor-2-threads.json").read_text())
    record["variants"]["compile"]["dynamo"] = {"frames_compiled": 9, "graphs": 9, "graph_breaks": 2,
                                               "recompile_limit_hits": 1, "limit_messages": [],
                                               "eager_fallback": True, "compiles_while_timing": 0}
    page = bench_report.format_markdown(record)
    assert "- compile: 9 frames compiled, 9 graphs, 2 graph breaks" in page and "**fell back to eager**" in page
