"""The run store: one folder per run for every profile, override and stage; a lock with a stale-lock rule."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from colorgan.cli import METHODS
from colorgan.experiments import study
from colorgan.experiments.study import StudyConfig
from colorgan.reproduce import plan
from colorgan.training import run_store
from colorgan.training.run_store import LOCK_FILE, RunLock
from tests.conftest import tiny_config

TINY_COLORGAN = dict(gen_width=8, gen_max_width=32, noise_channels=4, noise_width=16, noise_layers=2, disc_width=8,
                     disc_layers=2)
TINY_BASE = dict(image_size=32, batch_size=4, num_sample_crops=16, num_val_images=4, val_every=2, checkpoint_every=2,
                 log_every=1, num_bootstrap=200)


def test_overrides_profiles_and_stages_resolve_one_run_to_one_folder(tmp_path):
    """Before the store, `PARAMS="seeds=[0]"` put seed 0's runs under results/study+seeds=_0_-…/runs/, beside
    the identical ones in results/study/runs/, and the ablation kept its own copies."""
    results = tmp_path / "results"
    full = plan.plan("study", METHODS, str(tmp_path), results_root=results)
    seed0 = plan.plan("study", METHODS, str(tmp_path), {"seeds": [0]}, results_root=results)
    assert seed0.out_dir != full.out_dir  # its tables go to their own folder ...
    assert set(seed0.runs["study"]) < set(full.runs["study"])  # ... its runs are the study's
    assert len(seed0.runs["study"]) == 3
    stores = {Path(run_dir).parent for _, run_dir in full.runs["study"] + seed0.runs["study"]}
    assert stores == {Path(full.params["study"]["runs_dir"])} and Path(full.params["study"]["runs_dir"]).name == "runs"
    ablation = plan.plan("study", METHODS, str(tmp_path), results_root=results, kind="ablations")
    assert {Path(d).parent for _, d in ablation.runs["ablations"]} == stores  # one store for every stage
    smoke = plan.plan("smoke", METHODS, results_root=results)
    assert Path(smoke.params["train_colorgan"]["run_dir"]).parent == Path(full.params["study"]["runs_dir"])
    changed = plan.plan("study", METHODS, str(tmp_path), {"base.image_size": 32}, results_root=results)
    assert not set(changed.runs["study"]) & set(full.runs["study"])  # a change that trains differently: new runs


@pytest.mark.slow
def test_two_overrides_that_share_runs_train_them_once(tmp_path):
    """A study of seeds [0] then one of seeds [0, 1] (another results folder): seed 0 trains once."""
    runs_dir = tmp_path / "runs"

    def config(seeds, out):
        return StudyConfig(methods={"colorgan": TINY_COLORGAN}, base=TINY_BASE, seeds=seeds, num_images_seen=16,
                           num_diversity_samples=2, num_bootstrap=200, out_dir=str(tmp_path / out),
                           runs_dir=str(runs_dir))

    first = study.run_study(config([0], "study+seeds=_0_"), METHODS)
    (seed0,) = set(first.run_dir)
    trained = {p.name: p.stat().st_mtime_ns for p in Path(seed0).rglob("*") if p.is_file()}
    both = study.run_study(config([0, 1], "study"), METHODS)
    assert seed0 in set(both.run_dir) and len(set(both.run_dir)) == 2
    assert {p.name: p.stat().st_mtime_ns for p in Path(seed0).rglob("*") if p.is_file()} == trained  # untouched
    assert sorted(p.name for p in runs_dir.iterdir()) == sorted(Path(d).name for d in set(both.run_dir))


def test_a_run_another_process_trains_is_waited_for_then_reused(tmp_path):
    cfg = run_store.in_store(tiny_config(tmp_path), tmp_path / "runs")
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # a live holder on this host with a fresh heartbeat: wait
        (run_dir / LOCK_FILE).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                                     "heartbeat": time.time()}))
        entered = threading.Event()

        def take() -> None:
            with RunLock(run_dir, poll_seconds=0.05):
                entered.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert not entered.wait(0.6)
        (run_dir / LOCK_FILE).unlink()  # the holder finishes
        assert entered.wait(5)
        thread.join()
        assert not (run_dir / LOCK_FILE).exists()  # released on exit
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize("holder", ["dead pid", "old heartbeat on another host"])
def test_a_stale_lock_is_taken_over(tmp_path, holder):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    record = ({"pid": gone.pid, "host": socket.gethostname(), "heartbeat": time.time()} if holder == "dead pid" else
              {"pid": os.getpid(), "host": "elsewhere", "heartbeat": time.time() - run_store.STALE_SECONDS - 1})
    (run_dir / LOCK_FILE).write_text(json.dumps(record))
    started = time.monotonic()
    with RunLock(run_dir, poll_seconds=0.05):
        mine = json.loads((run_dir / LOCK_FILE).read_text())
        assert mine["pid"] == os.getpid() and mine["host"] == socket.gethostname()
    assert time.monotonic() - started < 2


def test_a_live_lock_on_another_host_is_not_stale(tmp_path):
    lock = RunLock(tmp_path, stale_seconds=60)
    assert not lock.is_stale({"pid": 1, "host": "elsewhere", "heartbeat": time.time() - 30})
    assert lock.is_stale({"pid": 1, "host": "elsewhere", "heartbeat": time.time() - 61})


def test_the_heartbeat_keeps_a_long_hold_fresh(tmp_path):
    with RunLock(tmp_path, heartbeat_seconds=0.05):
        first = json.loads((tmp_path / LOCK_FILE).read_text())["heartbeat"]
        time.sleep(0.3)
        assert json.loads((tmp_path / LOCK_FILE).read_text())["heartbeat"] > first
