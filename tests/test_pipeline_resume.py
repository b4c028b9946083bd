"""End to end through the pipeline: a reproduce killed mid-training resumes at its last checkpoint and ends
with the weights of an uninterrupted run; training stages on 2 torchrun processes (gloo, CPU).

The pipeline runs in a subprocess exactly as ``colorgan reproduce`` runs it (papermill, the notebooks'
``train_or_reuse``), on the smoke profile's first two stages (data, train_colorgan) at a toy size.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colorgan.cli import METHODS
from colorgan.method.config import ColorGANConfig
from colorgan.method.step import ColorGANStep
from colorgan.reproduce import pipeline, plan, progress
from colorgan.training.train import train, train_or_reuse
from tests.conftest import checkpoint_parameters

REPO = Path(__file__).resolve().parents[1]
TOY = {"image_size": 32, "num_sample_crops": 32, "batch_size": 4, "num_steps": 60, "checkpoint_every": 10,
       "log_every": 5, "gen_width": 8, "gen_max_width": 32, "noise_channels": 4, "noise_width": 16, "noise_layers": 2,
       "disc_width": 8, "disc_layers": 2, "vgg_layer": "relu2_2", "amp": "off", "num_bootstrap": 200}
# `colorgan reproduce` cut to the data and train_colorgan stages; prints every Event as a JSON line
DRIVER = """
import json, sys
from pathlib import Path
from colorgan.cli import METHODS
from colorgan.reproduce import pipeline, plan
p = plan.plan("smoke", METHODS, overrides=json.loads(sys.argv[2]), results_root=Path(sys.argv[1]))
p.stages = p.stages[:2]
show = lambda e: print(json.dumps({"stage": e.stage, "kind": e.kind, **e.info}), flush=True)
print(json.dumps({"outcome": pipeline.run(p, book=False, on_event=show, poll_seconds=0.1)}), flush=True)
"""


def start_driver(root: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(root), json.dumps(TOY)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc: the kernel papermill starts runs in its own session)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # the process ended meanwhile
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the driver and everything it started (the notebook's kernel): as a power cut would."""
    family = [*descendants(process.pid), process.pid]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.communicate()
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.1)


def newest_step(run_dir: Path) -> int:
    paths = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    return int(paths[-1].stem.split("_")[1]) if paths else 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the notebook kernel's process in /proc (Linux)")
def test_killed_reproduce_resumes_at_its_last_checkpoint_and_equals_an_uninterrupted_run(tmp_path: Path):
    params = plan.plan("smoke", METHODS, overrides=TOY, results_root=tmp_path).params["train_colorgan"]
    run_dir = REPO / params["run_dir"]
    first = start_driver(tmp_path)
    deadline = time.monotonic() + 600
    while newest_step(run_dir) == 0 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(first)
    killed_at = newest_step(run_dir)
    assert 0 < killed_at < TOY["num_steps"] and not (run_dir / "finished.json").exists(), \
        f"not killed mid-training (checkpoint step {killed_at}); first run rc {first.returncode}"

    second = start_driver(tmp_path)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    resumes = [e for e in events if e.get("kind") == "resume"]
    assert resumes == [{"stage": "train_colorgan", "kind": "resume", "step": killed_at,
                        "total_steps": TOY["num_steps"]}]
    assert events[-1]["outcome"]["train_colorgan"] == "ran"
    assert [e["step"] for e in events if e.get("kind") == "train"][-1] == TOY["num_steps"]

    uninterrupted = ColorGANConfig.from_params({**params, "run_dir": str(tmp_path / "ref")})
    train(uninterrupted, ColorGANStep, tmp_path / "cache")
    a, b = checkpoint_parameters(tmp_path / "ref"), checkpoint_parameters(run_dir)
    assert newest_step(run_dir) == TOY["num_steps"] and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]


@pytest.mark.slow
def test_reproduce_trains_a_stage_on_two_torchrun_processes(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the torchrun workers import this checkout
    overrides = {**TOY, "num_steps": 4, "checkpoint_every": 2, "log_every": 1, "norm": "instance",
                 "lambda_p": 0.0, "lambda_s": 0.0}
    p = plan.plan("smoke", METHODS, overrides=overrides, results_root=tmp_path)
    p.stages = p.stages[:2]
    reused = []

    def execute(source: Path, output: Path, params: dict) -> None:  # what the notebooks do, minus papermill
        output.write_text("{}")
        if "run_dir" in params:
            reused.append(train_or_reuse(ColorGANConfig.from_params(params), ColorGANStep, tmp_path / "cache"))

    events: list[progress.Event] = []
    pipeline.run(p, execute, book=False, on_event=events.append, nproc={"train_colorgan": 2}, poll_seconds=0.1)
    run_dir = REPO / p.params["train_colorgan"]["run_dir"]
    assert json.loads((run_dir / "provenance.json").read_text())["world_size"] == 2
    assert (p.out_dir / "logs" / "train_colorgan-torchrun.log").is_file()
    assert [r.step for r in reused] == [4]  # the notebook found the finished run: nothing trained twice
    assert [e.info["step"] for e in events if e.kind == "train"][-1] == 4
