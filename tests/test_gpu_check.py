"""`colorgan gpu-check`: the tiny CPU form of every section, the record that survives faults, and checks that can fail.

Fault injection (``GpuCheckConfig.fault``, test only) makes a section hang, raise, die like a segfault,
or stand in without checking, so the runner's deadlines, statuses and record are tested on the CPU.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colorgan.cli import main
from colorgan.method.step import ColorGANStep
from colorgan.performance import bench_check, ddp_check, gpu_check, gpu_check_config
from colorgan.performance.gpu_check_config import GpuCheckConfig
from colorgan.training.checkpoints import KEEP_ALL, CheckpointDir, load_checkpoint
from colorgan.training.train import train
from tests.conftest import tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_tiny_gpu_check_runs_every_section(tmp_path: Path, capsys):
    assert main(["gpu-check", "--tiny", "--output-dir", str(tmp_path), "--time-budget-minutes", "60"]) == 0
    [json_path] = tmp_path.glob("cpu-*-tiny.json")
    record = json.loads(json_path.read_text())
    sections = record["sections"]
    assert record["status"] == "ok" and record["ok"]
    assert {n: s["status"] for n, s in sections.items()} == {"switches": "passed", "methods": "passed",
                                                             "ddp": "passed", "bench": "measured"}
    switches = sections["switches"]["switches"]
    assert set(switches) == {"bf16", "channels_last", "fused_adam"} and all(s["ok"] for s in switches.values())
    # bf16 really computed in bf16 (its losses moved), within its tolerance; fp32 switches stayed close
    assert 0 < max(switches["bf16"]["deviation"].values()) <= switches["bf16"]["tolerance"]
    assert max(switches["channels_last"]["deviation"].values()) < 1e-3
    methods = sections["methods"]["methods"]
    for m in methods.values():  # steps and scores read back from each run's folder and evaluation
        assert m["ok"] and m["steps"] == m["checkpoint_step"] == 4 and m["eval_images"] == 4
        assert 5 < m["psnr"] < 60 and 0 < m["ssim"] <= 1
    ddp = sections["ddp"]
    # read back from the run: the resume happened at step 2 (progress.json and the log), one log line per step
    assert ddp["resumed_from"] == 2 and ddp["resumed_from_log"] == [2] and ddp["logged_steps"] == 4
    assert ddp["world_size"] == 1 and ddp["checkpoints"] == [2, 4]
    # on the CPU torchrun + resume trains exactly like one uninterrupted process, and reruns repeat bit for bit
    assert ddp["ddp_distance"] == ddp["resume_distance"] == ddp["rerun_distance"] == 0.0
    run = sections["bench"]["runs"]["b4"]
    assert set(run["variants"]) == {"fp32_eager", "bf16"} and Path(run["report"]).is_file()
    assert run["variants"]["fp32_eager"]["images_per_s"] > 0
    assert set(sections["bench"]["projected_paper_hours"]) == {"colorgan", "chromagan", "coltran"}
    assert record["seconds"] < record["time_limit_s"]
    assert all(s["seconds"] <= s["deadline_s"] + 1 for s in sections.values())
    page = json_path.with_suffix(".md").read_text()
    assert page.startswith("# GPU check: cpu") and "## switches: passed" in page and "## ddp: passed" in page
    assert "| goal | target | measured | met |" in page and "wrote" in capsys.readouterr().out


def test_a_hanging_raising_or_dying_section_is_recorded_and_the_rest_still_run(monkeypatch, tmp_path: Path):
    # the hang gets the 10 s minimum; the others a share that covers starting Python + torch on a busy machine
    monkeypatch.setattr(gpu_check, "SHARES", {"switches": 3.0, "methods": 0.1, "ddp": 3.0, "bench": 3.0})
    cfg = GpuCheckConfig(tiny=True, output_dir=str(tmp_path), time_budget_minutes=1.5,
                         fault="switches:raise,methods:hang,ddp:die,bench:stub")
    began = time.monotonic()
    record = gpu_check.run_gpu_check(cfg, {})
    took = time.monotonic() - began
    sections = record["sections"]
    assert sections["switches"]["status"] == "failed"
    assert sections["switches"]["error"] == "RuntimeError: fault injection: switches raised"
    hung = sections["methods"]
    assert hung["status"] == "failed" and hung["error"].startswith("stopped at its deadline")
    assert hung["deadline_s"] <= hung["seconds"] < hung["deadline_s"] + 2 * 5.0  # stopped, within the grace period
    assert sections["ddp"]["status"] == "failed" and "died (exit code -9)" in sections["ddp"]["error"]
    assert sections["bench"]["status"] == "measured"  # after all three, the last section still ran
    assert record["status"] == "failed" and took < 90  # the whole check kept to its limit
    [json_path] = tmp_path.glob("*-tiny.json")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(record))  # on disk as returned
    page = json_path.with_suffix(".md").read_text()
    assert "## methods: failed" in page and "stopped at its deadline" in page


def test_sections_without_time_are_not_run_and_the_check_is_incomplete(tmp_path: Path, capsys):
    code = main(["gpu-check", "--tiny", "--output-dir", str(tmp_path), "--time-budget-minutes", "0.1"])
    [json_path] = tmp_path.glob("*-tiny.json")
    record = json.loads(json_path.read_text())
    assert code == gpu_check.EXIT_CODES["incomplete"] == 3 and record["status"] == "incomplete"
    assert all(s["status"] == "not run" and "time limit" in s["why"] for s in record["sections"].values())
    assert "## ddp: not run" in capsys.readouterr().out


@pytest.mark.parametrize("statuses, overall", [
    ({"switches": "passed", "methods": "passed", "ddp": "passed", "bench": "measured"}, "ok"),
    ({"switches": "passed", "methods": "passed", "ddp": "passed", "bench": "off"}, "ok"),
    ({"switches": "passed", "methods": "passed", "ddp": "not run", "bench": "measured"}, "incomplete"),
    ({"switches": "passed", "methods": "passed", "ddp": "passed", "bench": "failed"}, "incomplete"),
    ({"switches": "passed", "methods": "passed", "ddp": "running", "bench": "not run"}, "incomplete"),
    ({"switches": "passed", "methods": "failed", "ddp": "not run", "bench": "failed"}, "failed"),
])
def test_overall_status(statuses, overall):
    assert gpu_check.overall_status({n: {"status": s} for n, s in statuses.items()}) == overall


def test_kill_9_mid_way_leaves_a_readable_partial_record(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    check = subprocess.Popen([sys.executable, "-m", "colorgan", "gpu-check", "--tiny", "--output-dir", str(tmp_path),
                              "--time-budget-minutes", "2", "--fault", "switches:stub,methods:hang"],
                             cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record, until = None, time.monotonic() + 60
    while time.monotonic() < until:
        found = list(tmp_path.glob("*-tiny.json"))
        record = json.loads(found[0].read_text()) if found else None
        if record and "pid" in record["sections"]["methods"]:
            break
        time.sleep(0.2)
    check.send_signal(signal.SIGKILL)
    check.wait()
    record = json.loads(next(tmp_path.glob("*-tiny.json")).read_text())  # still whole JSON after the kill
    assert record["status"] == "running" and record["seconds"] is None
    assert record["sections"]["switches"]["status"] == "passed"
    assert record["sections"]["methods"]["status"] == "running"
    assert record["sections"]["ddp"]["status"] == "not run"
    assert "## methods: running" in next(tmp_path.glob("*-tiny.md")).read_text()
    # the orphaned section stops itself (it watches its parent), so a dead check leaves nothing running
    pid, until = record["sections"]["methods"]["pid"], time.monotonic() + 15
    while time.monotonic() < until and Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid):
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (FileNotFoundError, IndexError):
        return "zombie"


# ----------------------------------------------------------------------------- DDP and resume: checks that fail


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """One process, 4 steps, checkpoints at 2 and 4, and its initial weights w0."""
    root = tmp_path_factory.mktemp("reference")
    initial: dict[str, torch.Tensor] = {}
    cfg = tiny_config(root, lambda_p=0.0, lambda_s=0.0, keep_checkpoints=9)
    train(cfg, ddp_check.recording_initial_weights(ColorGANStep, initial), root / "cache")
    return Path(cfg.run_dir), initial


def interrupted_run(tmp_path: Path, between=None, build=ColorGANStep) -> Path:
    """2 steps, then ``between(run_dir)``, then resumed to 4 (as the check's torchrun run)."""
    cfg = tiny_config(tmp_path, lambda_p=0.0, lambda_s=0.0, keep_checkpoints=9)
    train(cfg.replace(num_steps=2), build, tmp_path / "cache")
    if between is not None:
        between(Path(cfg.run_dir))
    train(cfg.replace(resume=True), build, tmp_path / "cache")
    return Path(cfg.run_dir)


def test_a_correct_resume_passes(uninterrupted, tmp_path: Path):
    reference, initial = uninterrupted
    verdict = ddp_check.judge_ddp(interrupted_run(tmp_path), reference, initial, 2, 4, 0.05)
    assert verdict["ok"] and verdict["failures"] == [] and verdict["resumed_from"] == 2
    assert verdict["ddp_distance"] == verdict["resume_distance"] == 0.0


def test_an_optimiser_state_dropped_at_resume_fails_the_check(uninterrupted, tmp_path: Path):
    def drop_optimiser_state(run_dir: Path) -> None:
        [path] = CheckpointDir(run_dir / "checkpoints").paths()
        state = load_checkpoint(path)
        state.pop("digest", None)
        for opt in state["optimizers"].values():
            opt["state"] = {}  # Adam's moments and step counts lost: it restarts as if new
        path.unlink()
        CheckpointDir(run_dir / "checkpoints", keep=KEEP_ALL).save(state["step"], state)

    reference, initial = uninterrupted
    verdict = ddp_check.judge_ddp(interrupted_run(tmp_path, drop_optimiser_state), reference, initial, 2, 4, 0.05)
    assert not verdict["ok"] and verdict["ddp_distance"] == 0.0  # the first half was fine
    assert verdict["resume_distance"] > 0.05  # measured 0.41; its max |Δw| of 1.8e-3 passed the old 1e-2 bound
    assert verdict["failures"] == [f"resumed vs uninterrupted at step 4: relative distance "
                                   f"{verdict['resume_distance']:.3g} > 0.05"]


def test_a_rank_that_skips_its_update_fails_the_check(uninterrupted, tmp_path: Path):
    def skipping(cfg, device):
        step = ColorGANStep(cfg, device)
        original = step.opt_g.step
        calls = []

        def every_other(*args, **kwargs):  # the generator's update is lost on every other step
            calls.append(1)
            return original(*args, **kwargs) if len(calls) % 2 else None

        step.opt_g.step = every_other
        return step

    reference, initial = uninterrupted
    verdict = ddp_check.judge_ddp(interrupted_run(tmp_path, build=skipping), reference, initial, 2, 4, 0.05)
    assert not verdict["ok"] and verdict["ddp_distance"] > 0.05
    assert verdict["failures"][0].startswith("DDP vs one process at step 2: relative distance")


def test_a_run_that_restarted_instead_of_resuming_fails_the_check(uninterrupted, tmp_path: Path):
    def forget_checkpoints(run_dir: Path) -> None:  # deterministic on CPU: the weights alone cannot tell
        for path in CheckpointDir(run_dir / "checkpoints").paths():
            path.unlink()

    reference, initial = uninterrupted
    verdict = ddp_check.judge_ddp(interrupted_run(tmp_path, forget_checkpoints), reference, initial, 2, 4, 0.05)
    assert not verdict["ok"] and verdict["resumed_from"] == 0 and verdict["resume_distance"] == 0.0
    assert "the run resumed from step 0 (progress.json), not 2" in verdict["failures"]


@pytest.mark.parametrize("device, visible, expected", [
    ("cuda:1", None, ("1", "cuda")),
    ("cuda:1", "3,5", ("5", "cuda")),
    ("cuda", "2", ("2", "cuda")),
    ("cpu", None, (None, "cpu")),
])
def test_torchrun_ranks_use_the_requested_gpu(device, visible, expected):
    environ = {"PATH": "/bin"} | ({"CUDA_VISIBLE_DEVICES": visible} if visible else {})
    env, rank_device = ddp_check.torchrun_env(torch.device(device), environ)
    assert (env.get("CUDA_VISIBLE_DEVICES"), rank_device) == expected
    assert str(REPO) in env["PYTHONPATH"]


@pytest.mark.parametrize("changes, message", [
    ({"switches": "bf16,warp"}, r"switches: \['warp'\] unknown"),
    ({"large_batch_variants": "turbo"}, r"large_batch_variants: \['turbo'\] unknown"),
    ({"bf16_tolerance": -1.0}, "bf16_tolerance: -1.0 is below the minimum 0"),
    ({"fault": "ddp:explode"}, "fault: 'ddp:explode' is not SECTION:ACTION"),
])
def test_gpu_check_config_is_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        GpuCheckConfig(**changes)


def test_sizes_resolve_for_the_gpu_and_the_tiny_form():
    assert (GpuCheckConfig().resolved().image_size, GpuCheckConfig().resolved().batch_size) == (256, 16)
    tiny = GpuCheckConfig(tiny=True).resolved()
    assert (tiny.image_size, tiny.batch_size, tiny.num_steps) == (32, 4, 4)
    assert gpu_check_config.model_params(GpuCheckConfig(), "coltran") == {"spatial_batch_size": 4}


def test_a_bench_error_keeps_what_was_measured(monkeypatch, tmp_path: Path):
    committed = json.loads((REPO / "results/bench/cpu-intel-r-xeon-r-processor-2-threads.json").read_text())

    def fake_bench(bench_cfg):  # the committed record at batch 4; a CUDA error at the larger batch
        if bench_cfg.batch_size != 4:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return {**committed, "batch_size": 4}

    monkeypatch.setattr(bench_check.bench, "run_bench", fake_bench)
    monkeypatch.setattr(bench_check, "largest_batch", lambda cfg, device, variants: 8)
    reported = []
    cfg = GpuCheckConfig(tiny=True, output_dir=str(tmp_path)).resolved()
    result = bench_check.check_bench(cfg, torch.device("cpu"), {}, time.time() + 600, reported.append)
    assert list(result["runs"]) == ["b4"] and result["runs"]["b4"]["best"] == committed["best"]
    assert result["errors"] == {"b8": "RuntimeError: CUDA error: an illegal memory access was encountered"}
    assert reported[0]["runs"]["b4"]["images_per_s"] == committed["variants"][committed["best"]]["images_per_s"]
    entry = gpu_check.section_entry("bench", {"outcome": "finished", "result": result, "error": None, "seconds": 1.0}, 9)
    assert entry["status"] == "measured"

    def search_fails(cfg, device, variants):
        raise RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR")

    monkeypatch.setattr(bench_check, "largest_batch", search_fails)
    result = bench_check.check_bench(cfg, torch.device("cpu"), {}, time.time() + 600, reported.append)
    assert list(result["runs"]) == ["b4"] and "CUDNN_STATUS_INTERNAL_ERROR" in result["errors"]["largest_batch"]
    monkeypatch.setattr(bench_check, "largest_batch", lambda cfg, device, variants: 8)
    result = bench_check.check_bench(cfg, torch.device("cpu"), {}, time.time(), reported.append)  # no time left
    assert list(result["runs"]) == ["b4"] and "batch 8 not benchmarked" in result["largest_batch_skipped"]


def test_the_ddp_bound_grows_with_the_devices_own_nondeterminism_up_to_a_limit():
    assert ddp_check.tolerance_over_floor(0.05, 0.0) == (0.05, None)  # CPU: identical runs repeat exactly
    assert ddp_check.tolerance_over_floor(0.05, 0.04) == (0.08, None)  # a GPU's bf16 + cuDNN drift
    bound, why = ddp_check.tolerance_over_floor(0.05, 0.15)
    assert bound == 0.3 and "0.15 apart" in why and "not judged" in why


def test_torchrun_calls_are_stopped_at_the_sections_deadline():
    began = time.monotonic()
    code, output = ddp_check.run_until([sys.executable, "-c", "print('started', flush=True); import time; "
                                        "time.sleep(60)"], os.environ, time.time() + 2)
    assert code is None and "started" in output and time.monotonic() - began < 10
    assert ddp_check.run_until([sys.executable, "-c", "print('done')"], os.environ, time.time() + 30) == (0, "done\n")
