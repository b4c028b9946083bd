import json
import subprocess
from pathlib import Path

import pytest
import torch

from colorgan.common.runtime import git_commit
from colorgan.method.data import sample_images
from colorgan.method.step import ColorGANStep
from colorgan.training import train as train_module
from colorgan.training.checkpoints import CheckpointDir
from colorgan.training.train import NonFiniteLossError, check_finite, fit, train
from tests.conftest import assert_resume_equals_uninterrupted, tiny_config

CPU = torch.device("cpu")


def fixed_batch() -> torch.Tensor:
    train_set, _ = sample_images(8, 32)
    return torch.from_numpy(train_set.images[:4].copy())


def test_colorgan_learns_a_fixed_batch(tmp_path: Path):
    torch.manual_seed(0)
    step = ColorGANStep(tiny_config(tmp_path, lr_g=5e-4, lr_d=1e-3), CPU)
    batch = fixed_batch()
    l1 = [float(step(batch)["l1"]) for _ in range(40)]
    assert l1[-1] < 0.5 * l1[0], l1


def test_every_loss_term_is_logged_and_finite(tmp_path: Path):
    step = ColorGANStep(tiny_config(tmp_path), CPU)
    terms = check_finite(step(fixed_batch()), 1)
    assert {"l1", "perceptual", "feature", "adversarial", "g_total", "d_loss", "gp", "wasserstein"} <= set(terms)


def test_weight_clipping_keeps_critic_weights_bounded(tmp_path: Path):
    step = ColorGANStep(tiny_config(tmp_path, adversarial="wgan-clip", clip_value=0.01), CPU)
    step(fixed_batch())
    assert max(p.abs().max().item() for p in step.critic.parameters()) <= 0.01


def test_resume_equals_uninterrupted(tmp_path: Path):
    assert_resume_equals_uninterrupted(tiny_config, ColorGANStep, tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6]  # no duplicated or missing log lines


def test_resume_check_catches_a_restart_from_step_zero(tmp_path: Path, monkeypatch):
    # a resume that ignores the checkpoint and retrains from step 0 ends with the very same weights
    monkeypatch.setattr(train_module, "restore", lambda checkpoints, step, cfg: (0, 0.0))
    fast = lambda folder, **changes: tiny_config(folder, lambda_p=0.0, lambda_s=0.0, **changes)  # noqa: E731
    with pytest.raises(AssertionError, match="the resumed run made 6 updates, not 6 - 3"):
        assert_resume_equals_uninterrupted(fast, ColorGANStep, tmp_path)


def test_run_folder_records_config_provenance_and_split(tmp_path: Path):
    cfg = tiny_config(tmp_path, num_steps=2)
    train(cfg, ColorGANStep, tmp_path / "cache")
    run = Path(cfg.run_dir)
    config = json.loads((run / "config.json").read_text())
    provenance = json.loads((run / "provenance.json").read_text())
    split = json.loads((run / "split.json").read_text())
    assert config["method"] == "colorgan" and config["lambda_s"] == 1.0
    assert provenance["vgg_weights"] == "random(seed=0)" and provenance["seed"] == 0
    assert {"git_commit", "device", "versions"} <= set(provenance) and provenance["versions"]["torch"]
    assert provenance["data"]["source"] == "samples" and len(split["train"]) == 16


def test_existing_run_is_not_overwritten(tmp_path: Path):
    cfg = tiny_config(tmp_path, num_steps=2)
    train(cfg, ColorGANStep, tmp_path / "cache")
    with pytest.raises(FileExistsError, match="resume=True"):
        train(cfg, ColorGANStep, tmp_path / "cache")


def test_resume_with_a_changed_setting_is_refused(tmp_path: Path):
    cfg = tiny_config(tmp_path, num_steps=2)
    train(cfg, ColorGANStep, tmp_path / "cache")
    with pytest.raises(ValueError, match=r"lambda_p: 100.0 -> 5.0"):
        train(cfg.replace(resume=True, num_steps=4, lambda_p=5.0), ColorGANStep, tmp_path / "cache")


def test_non_finite_loss_names_step_and_term(tmp_path: Path):
    with pytest.raises(NonFiniteLossError, match=r"step 7: loss term\(s\) \['l1'\]"):
        check_finite({"l1": torch.tensor(float("nan")), "gp": torch.tensor(1.0)}, 7)


def test_max_minutes_stops_with_a_checkpoint(tmp_path: Path):
    cfg = tiny_config(tmp_path, num_steps=1000, max_minutes=1e-6, checkpoint_every=500)
    train_set, _ = sample_images(16, 32)
    result = fit(cfg, ColorGANStep(cfg, CPU), train_set, CPU)
    assert result.stopped_early and result.step == 1
    assert [p.name for p in CheckpointDir(Path(cfg.run_dir) / "checkpoints").paths()] == ["step_00000001.pt"]


def test_train_or_reuse_reuses_finished_and_resumes_partial(tmp_path: Path):
    from colorgan.training.train import train_or_reuse

    cfg = tiny_config(tmp_path, num_steps=4, checkpoint_every=2)
    first = train_or_reuse(cfg, ColorGANStep, tmp_path / "cache")
    stamp = (Path(cfg.run_dir) / "finished.json").stat().st_mtime_ns
    again = train_or_reuse(cfg.replace(progress=True), ColorGANStep, tmp_path / "cache")  # bookkeeping only
    assert (again.step, again.total_steps) == (first.step, 4)
    assert (Path(cfg.run_dir) / "finished.json").stat().st_mtime_ns == stamp  # nothing retrained
    longer = train_or_reuse(cfg.replace(num_steps=6), ColorGANStep, tmp_path / "cache")  # resumes from step 4
    assert longer.step == 6
    lines = (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4, 5, 6]


def test_commit_is_dirty_for_code_changes_but_not_for_results(tmp_path: Path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table1.md").write_text("old")
    (tmp_path / "code.py").write_text("x = 1")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "c")
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "results" / "table1.md").write_text("rewritten by a pipeline run")
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2")
    assert git_commit(tmp_path) == clean + "-dirty"
