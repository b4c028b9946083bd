"""`colorgan train --resume` continues a run with its saved config (issue 15: the README's example)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from colorgan import cli

TINY_FLAGS = ["--image-size", "32", "--batch-size", "4", "--num-sample-crops", "16", "--gen-width", "8",
              "--gen-max-width", "32", "--noise-channels", "4", "--noise-width", "16", "--noise-layers", "2",
              "--disc-width", "8", "--disc-layers", "2", "--no-progress", "--checkpoint-every", "2"]


@pytest.mark.slow
def test_resume_without_the_first_flags_continues_the_saved_config(tmp_path, capsys):
    run = str(tmp_path / "runs" / "mine")
    assert cli.main(["train", *TINY_FLAGS, "--num-steps", "2", "--run-dir", run]) == 0
    # the README's second command: only the run folder, the new budget and --resume
    assert cli.main(["train", "--run-dir", run, "--num-steps", "4", "--resume"]) == 0, capsys.readouterr().err
    assert "finished after 4/4 steps" in capsys.readouterr().out
    config = json.loads((Path(run) / "config.json").read_text())
    assert config["image_size"] == 32 and config["gen_width"] == 8 and config["num_steps"] == 4
    assert sorted(p.name for p in (Path(run) / "checkpoints").iterdir()) == ["step_00000002.pt", "step_00000004.pt"]


@pytest.mark.slow
def test_resume_refuses_a_flag_that_may_not_change(tmp_path, capsys):
    run = str(tmp_path / "mine")
    assert cli.main(["train", *TINY_FLAGS, "--num-steps", "2", "--run-dir", run]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--run-dir", run, "--resume", "--image-size", "64", "--num-steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "--image-size 64 (saved: 32) may not change" in err and "num_steps" in err
    # a flag that repeats the saved value is fine, as are the speed switches
    assert cli.main(["train", "--run-dir", run, "--resume", "--image-size", "32", "--num-steps", "3",
                     "--no-fused-adam"]) == 0, capsys.readouterr().err


def test_resume_of_another_method_says_which(tmp_path, capsys):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "coltran", "image_size": 32}))
    assert cli.main(["train", "--run-dir", str(run), "--resume"]) == 2
    assert "holds a 'coltran' run; pass --method coltran" in capsys.readouterr().err
