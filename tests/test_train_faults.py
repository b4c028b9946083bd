"""Training faults: damaged or malicious checkpoints, a SIGKILL mid-run, NaN losses, full or unwritable disks."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from colorgan.cli import main, methods
from colorgan.common import runtime
from colorgan.method.config import ColorGANConfig
from colorgan.method.data import sample_images
from colorgan.method.step import ColorGANStep
from colorgan.training import checkpoints as checkpoints_module
from colorgan.training import train as train_module
from colorgan.training.checkpoints import CHECKPOINT_FORMAT, CheckpointDir
from colorgan.training.run_files import truncate_metrics
from colorgan.training.train import NonFiniteLossError, fit, train
from tests.bad_images import evil_pickle
from tests.test_cli import TINY
from tests.conftest import tiny_config

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def fast_config(tmp_path: Path, **changes):
    """tiny_config without Lp and Ls, so no VGG19 is built: these tests are about the loop, not the losses."""
    return tiny_config(tmp_path, lambda_p=0.0, lambda_s=0.0, **changes)


def fake_state(step_number: int) -> dict:
    """A small checkpoint-shaped state whose tensor bytes are easy to find in the file."""
    return {"format": CHECKPOINT_FORMAT, "step": step_number, "modules": {"w": torch.arange(4096.0) + step_number}}


# ------------------------------------------------------------------------------------- checkpoints


def test_failed_save_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    checkpoints = CheckpointDir(tmp_path / "checkpoints", keep=1)
    checkpoints.save(2, fake_state(2))
    before = (tmp_path / "checkpoints" / "step_00000002.pt").read_bytes()

    def disk_full(state, f):  # half a checkpoint reaches the disk, then the disk is full
        f.write(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints_module.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        checkpoints.save(4, fake_state(4))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000002.pt"]  # no torn file
    assert (tmp_path / "checkpoints" / "step_00000002.pt").read_bytes() == before
    assert checkpoints.load_latest()["step"] == 2


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def flip_a_weight_bit(path: Path) -> None:
    """Flip one bit inside the tensor data: the zip and the pickle stay valid, torch.load does not notice."""
    data = bytearray(path.read_bytes())
    offset = data.find((torch.arange(4096.0) + 4).numpy().tobytes()[:256])
    assert offset > 0
    data[offset + 1000] ^= 0x10
    path.write_bytes(bytes(data))


def replace_with_code(path: Path) -> None:
    evil_pickle(path, path.parent / "payload_ran")


def strip_the_digest(path: Path) -> None:
    """Re-save the same state without its digest: every byte of the weights intact, nothing to verify them by."""
    state = torch.load(path, weights_only=True)
    del state["digest"]
    torch.save(state, path)


@pytest.mark.parametrize("damage, reason", [
    (truncate, "is unreadable, probably truncated or damaged"),
    (empty, "is unreadable, probably truncated or damaged"),
    (flip_a_weight_bit, "is damaged: its contents do not match the digest"),
    (replace_with_code, "was refused: it holds pickled objects other than tensors"),
    (strip_the_digest, "carries no digest, so its contents cannot be verified"),
])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path, caplog, damage, reason):
    checkpoints = CheckpointDir(tmp_path / "checkpoints", keep=3)
    checkpoints.save(2, fake_state(2))
    newest = checkpoints.save(4, fake_state(4))
    damage(newest)
    state = checkpoints.load_latest()
    assert state["step"] == 2 and torch.equal(state["modules"]["w"], fake_state(2)["modules"]["w"])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(newest) in w and reason in w for w in warnings), warnings
    assert any("using" in w and "step_00000002.pt (step 2) instead of the damaged" in w for w in warnings)
    assert not (tmp_path / "checkpoints" / "payload_ran").exists()  # refused before any code ran


def test_no_readable_checkpoint_is_a_clear_error(tmp_path: Path):
    checkpoints = CheckpointDir(tmp_path / "checkpoints")
    truncate(checkpoints.save(2, fake_state(2)))
    with pytest.raises(FileNotFoundError, match=r"no readable checkpoint in .*step_00000002.pt is unreadable.*"
                                                r"Move the damaged files away"):
        checkpoints.load_latest()


def test_resume_says_it_falls_back_and_continues(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO, logger="colorgan")
    cfg = fast_config(tmp_path, num_steps=4, checkpoint_every=2)
    train(cfg, ColorGANStep, tmp_path / "cache")
    run = Path(cfg.run_dir)
    truncate(run / "checkpoints" / "step_00000004.pt")
    (run / "checkpoints" / ".step_00000006.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # a killed save
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "l1": 0.3')  # a line cut off by the kill
    result = train(cfg.replace(resume=True, num_steps=5), ColorGANStep, tmp_path / "cache")
    assert result.step == 5
    assert "using " in caplog.text and "step_00000002.pt (step 2) instead of the damaged" in caplog.text
    assert "resumed" in caplog.text and "at step 2" in caplog.text
    assert "unfinished checkpoint" in caplog.text and not list((run / "checkpoints").glob(".*.tmp"))
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_resume_without_a_checkpoint_warns_and_starts_from_step_zero(tmp_path: Path, caplog):
    cfg = fast_config(tmp_path, num_steps=2, resume=True)
    result = train(cfg, ColorGANStep, tmp_path / "cache")
    assert result.step == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("resume=True, but" in w and "holds no checkpoint: training starts from step 0" in w
               for w in warnings), warnings


def test_torn_metrics_line_is_dropped(tmp_path: Path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "l1": 0.5}\n{"step": 2, "l1": 0.4}\n{"step": 3, "l1"')
    truncate_metrics(path, 2)
    assert path.read_text() == '{"step": 1, "l1": 0.5}\n{"step": 2, "l1": 0.4}\n'
    assert "dropped a damaged line" in caplog.text


# ----------------------------------------------------------------------------------- non-finite loss


class PoisonedStep(ColorGANStep):
    """ColorGAN whose generator weights turn to NaN just before update number ``poison_at``."""

    poison_at = 3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.calls == self.poison_at:
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
        return super().__call__(batch)


def test_non_finite_loss_stops_with_step_and_term_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    # checks run at log steps (here every 2nd), yet the error names step 3, where it happened
    cfg = fast_config(tmp_path, num_steps=8, checkpoint_every=2, log_every=2)
    train_set, _ = sample_images(16, 32)
    with pytest.raises(NonFiniteLossError, match=r"step 3: loss term\(s\) \[.*'l1'.*\] became non-finite.*"
                                                 r"the last good checkpoint is .*step_00000002.pt"):
        fit(cfg, PoisonedStep(cfg, CPU), train_set, CPU)
    checkpoints = CheckpointDir(Path(cfg.run_dir) / "checkpoints")
    assert [p.name for p in checkpoints.paths()] == ["step_00000002.pt"]  # nothing written after the NaN
    state = checkpoints.load_latest()
    assert all(torch.isfinite(v).all() for sd in state["modules"].values() for v in sd.values() if v.is_floating_point())


def test_non_finite_loss_through_the_cli_is_one_error_line(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(methods(), "colorgan", (type(fast_config(tmp_path)), PoisonedStep))
    code = main(["train", *TINY, "--num-steps", "4", "--lambda-p", "0", "--lambda-s", "0", "--log-every", "1",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 2
    assert "error: step 3: loss term(s)" in capsys.readouterr().err


# ------------------------------------------------------------------------------- disk and folders


def test_unwritable_run_dir_fails_before_the_data_is_read(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "file").write_text("a regular file: no folder can be made under it, even by root")
    monkeypatch.setattr(train_module, "load_split", lambda *a: pytest.fail("data was read before the check"))
    assert main(["train", "--run-dir", str(tmp_path / "file" / "run"), "--no-progress"]) == 2
    assert f"error: run_dir: cannot write to {tmp_path / 'file' / 'run'}" in capsys.readouterr().err


def test_full_disk_fails_before_training(tmp_path: Path, monkeypatch):
    cfg = fast_config(tmp_path, num_steps=2, checkpoint_every=1)  # 3 saves, keep 2: the third waits for room
    step = ColorGANStep(cfg, CPU)
    free = checkpoints_module.shutil.disk_usage(tmp_path)._replace(free=2 << 20)  # 2 MiB left
    monkeypatch.setattr(checkpoints_module.shutil, "disk_usage", lambda path: free)
    train_set, _ = sample_images(16, 32)
    with pytest.raises(OSError, match=r"run_dir: .* has 2.0 MiB free, but training needs about .* MiB \(3 "
                                      r"checkpoint\(s\) of .* MiB\); free some space"):
        fit(cfg, step, train_set, CPU)
    assert not step.opt_g.state and not step.opt_d.state  # not one update was made
    assert not (Path(cfg.run_dir) / "checkpoints").exists()


def test_free_space_counts_only_the_checkpoints_the_run_writes(tmp_path: Path, monkeypatch):
    """keep_checkpoints=1000 on a 2-step run asks room for its 3 saves, not for 1001 (a CI disk refused such a run)."""
    cfg = fast_config(tmp_path, num_steps=2, checkpoint_every=1, keep_checkpoints=1000)
    asked = []
    monkeypatch.setattr(train_module, "check_free_space", lambda run_dir, size, count: asked.append(count))
    fit(cfg, ColorGANStep(cfg, CPU), sample_images(16, 32)[0], CPU)
    assert asked == [3]


@pytest.mark.parametrize("num_steps, checkpoint_every, val_every, saves", [
    (10, 500, None, 1), (10, 5, None, 3), (10, 3, None, 4), (10, 5, 0, 3), (10, 5, 2, 8), (0, 5, 2, 1)])
def test_saves_at_most(num_steps, checkpoint_every, val_every, saves):
    assert checkpoints_module.saves_at_most(num_steps, checkpoint_every, val_every) == saves


def test_checkpoint_size_estimate_is_close(tmp_path: Path):
    cfg = fast_config(tmp_path, num_steps=2, checkpoint_every=2)
    train(cfg, ColorGANStep, tmp_path / "cache")
    actual = (Path(cfg.run_dir) / "checkpoints" / "step_00000002.pt").stat().st_size
    estimate = checkpoints_module.estimate_checkpoint_bytes(ColorGANStep(cfg, CPU))
    assert 0.8 * actual < estimate < 1.5 * actual, (estimate, actual)


# ------------------------------------------------------------------------------------- SIGKILL


# small enough that a fresh process starts, trains and checkpoints in seconds; no VGG19 (lambda_p = lambda_s = 0)
KILL_TEST_CONFIG = dict(image_size=32, batch_size=4, num_sample_crops=16, gen_width=8, gen_max_width=32,
                        noise_channels=4, noise_width=16, disc_width=8, lambda_p=0.0, lambda_s=0.0, seed=3,
                        device="cpu", log_every=1, checkpoint_every=1, keep_checkpoints=3, progress=False)


def start_training(run_dir: Path, num_steps: int, *flags: str) -> subprocess.Popen:
    """``python -m colorgan train`` with KILL_TEST_CONFIG in a fresh process that imports this checkout."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in KILL_TEST_CONFIG.items() if not isinstance(v, bool)]
    args += ["--no-progress", "--run-dir", str(run_dir), "--num-steps", str(num_steps)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           # CPU results can depend on the number of threads that split a reduction: use this process's
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.Popen([sys.executable, "-m", "colorgan", "train", *args, *flags], cwd=run_dir.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def final_state(run_dir: Path) -> dict:
    state = CheckpointDir(run_dir / "checkpoints").load_latest()
    return {"modules": state["modules"], "optimizers": state["optimizers"], "step": state["step"]}


def losses(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "sec_per_step"} for line in lines]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path):
    killed = tmp_path / "killed" / "run"
    killed.parent.mkdir()
    process = start_training(killed, 100_000)  # would run for hours: the kill is surely mid-run
    deadline = time.monotonic() + 240
    while not list((killed / "checkpoints").glob("step_*.pt")):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL

    num_steps = CheckpointDir(killed / "checkpoints").load_latest()["step"] + 2  # resume for two more steps
    resumed = start_training(killed, num_steps, "--resume")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output
    straight = tmp_path / "straight" / "run"  # the uninterrupted run, in this process (same thread count)
    train(ColorGANConfig(**KILL_TEST_CONFIG, num_steps=num_steps, run_dir=str(straight)), ColorGANStep,
          tmp_path / "cache")

    a, b = final_state(straight), final_state(killed)
    assert a["step"] == b["step"] == num_steps
    for kind in ("modules", "optimizers"):
        flat_a, flat_b = flatten(a[kind]), flatten(b[kind])
        assert flat_a.keys() == flat_b.keys()
        different = [k for k in flat_a if not equal(flat_a[k], flat_b[k])]
        assert not different, (kind, different[:5])
    assert losses(killed) == losses(straight)  # the same loss at every step, none logged twice


def flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, item in tree.items() for k, v in flatten(item, f"{prefix}{key}.").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, item in enumerate(tree) for k, v in flatten(item, f"{prefix}{i}.").items()}
    return {prefix: tree}


def equal(a, b) -> bool:
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_atomic_writes_honour_the_umask_like_open(tmp_path: Path):
    """mkstemp's 0600 would make shared results unreadable to the rest of a group."""
    old = os.umask(0o022)
    try:
        runtime.write_json(tmp_path / "a.json", {"x": 1})
        (tmp_path / "b.txt").write_text("x")
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)
