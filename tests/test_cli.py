from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from colorgan.cli import main
from tests.conftest import write_images

TINY = ["--image-size", "32", "--batch-size", "4", "--num-sample-crops", "16", "--num-steps", "3",
        "--gen-width", "8", "--gen-max-width", "32", "--noise-channels", "4", "--noise-width", "16",
        "--disc-width", "8", "--no-progress", "--num-bootstrap", "200"]


def test_train_evaluate_colorize(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the image cache goes under ./.cache
    run = tmp_path / "run"
    assert main(["train", *TINY, "--run-dir", str(run)]) == 0
    assert "finished after 3/3 steps" in capsys.readouterr().out

    assert main(["evaluate", str(run), "--diversity", "2"]) == 0
    out = capsys.readouterr().out
    assert "colorgan" in out and "grayscale (ab = 0)" in out and "vgg_weights=random(seed=0)" in out
    per_image = pd.read_csv(run / "eval" / "per_image.csv")
    assert set(per_image.method) == {"colorgan", "grayscale (ab = 0)"}
    assert (per_image[per_image.method == "colorgan"].diversity > 0).all()

    photos = tmp_path / "photos"
    write_images(photos, 1, size=(70, 45))
    Image.new("RGBA", (33, 21), (200, 30, 30, 77)).save(photos / "alpha.png")
    (photos / "notes.jpg").write_text("not an image")
    inputs = sorted(photos.iterdir())
    code = main(["colorize", *map(str, inputs), "-o", str(tmp_path / "out"), "--run", str(run)])
    captured = capsys.readouterr()
    assert code == 1  # one file failed
    assert captured.err.count("failed:") == 1 and "notes.jpg" in captured.err
    color = Image.open(tmp_path / "out" / "img_000_color.png")
    assert color.size == (70, 45)
    alpha = Image.open(tmp_path / "out" / "alpha_color.png")
    assert alpha.mode == "RGBA" and alpha.size == (33, 21)
    assert (np.asarray(alpha)[..., 3] == 77).all()


def test_bad_parameter_fails_before_work(tmp_path: Path, capsys):
    assert main(["train", "--image-size", "60", "--run-dir", str(tmp_path / "r")]) == 2
    assert "image_size: 60 must be divisible by 8" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_every_command_has_help(capsys):
    """--help renders for every command and method (argparse %-formats help text: '95%' once crashed it)."""
    for argv in (["--help"], ["train", "--help"], ["train", "--method", "chromagan", "--help"],
                 ["train", "--method", "coltran", "--help"], ["evaluate", "--help"], ["bench", "--help"],
                 ["reproduce", "--help"], ["ablations", "--help"], ["colorize", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0, argv
        assert "usage:" in capsys.readouterr().out


def test_evaluate_scores_the_checkpoint_asked_for(tmp_path: Path, capsys, monkeypatch):
    """`evaluate --checkpoint best_val|last|STEP` scores those weights, each into its own folder."""
    import json

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    train = [*TINY[:TINY.index("--num-steps")], "--num-steps", "4", *TINY[TINY.index("--num-steps") + 2:]]
    assert main(["train", *train, "--run-dir", str(run), "--num-sample-crops", "24", "--num-val-images", "8",
                 "--val-every", "2", "--checkpoint-every", "2", "--keep-checkpoints", "2"]) == 0
    capsys.readouterr()
    steps = {}
    for checkpoint in ("last", "2", "best_val"):
        assert main(["evaluate", str(run), "--checkpoint", checkpoint]) == 0
        assert f"{checkpoint} checkpoint, step" in capsys.readouterr().out
        folder = run / "eval" / ("" if checkpoint == "last" else f"checkpoint-{checkpoint}")
        steps[checkpoint] = json.loads((folder / "summary.json").read_text())["checkpoint_step"]
    assert steps["last"] == 4 and steps["2"] == 2 and steps["best_val"] in (2, 4)
    assert main(["evaluate", str(run), "--checkpoint", "3"]) == 2
    assert "no checkpoint of step 3; it keeps steps [2, 4]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), "--checkpoint", "newest"])
    assert "not a checkpoint; give best_val, last or a step number" in capsys.readouterr().err
