"""The pipeline while it runs: progress events, the resume message, stages never served stale, the printer."""

import io
import dataclasses
import json
from pathlib import Path

import pytest

from colorgan.cli import METHODS
from colorgan.method.config import ColorGANConfig
from colorgan.method.step import ColorGANStep
from colorgan.reproduce import pipeline, plan
from colorgan.reproduce.progress import Event, ProgressPrinter
from colorgan.training.train import train_or_reuse

TINY = {"image_size": 32, "num_sample_crops": 16, "batch_size": 4, "num_steps": 6, "checkpoint_every": 3,
        "log_every": 1, "gen_width": 8, "gen_max_width": 32, "noise_channels": 4, "noise_width": 16,
        "noise_layers": 2, "disc_width": 8, "disc_layers": 2, "vgg_layer": "relu2_2", "amp": "off", "num_bootstrap": 200}


def write_output(output: Path) -> None:
    output.write_text(json.dumps({"cells": []}))


def test_a_failed_run_is_never_served_as_the_cache_of_another(tmp_path):
    # fails on the code before issue 14: run B's partial table1 notebook was reported as A's cache hit
    def execute(source: Path, output: Path, params: dict) -> None:
        write_output(output)
        if params.get("num_fig2_images") == 2:
            raise RuntimeError("run B dies in table1")

    a = plan.plan("smoke", METHODS, results_root=tmp_path)
    assert set(pipeline.run(a, execute, book=False).values()) == {"ran"}
    b = plan.plan("smoke", METHODS, overrides={"num_fig2_images": 2}, results_root=tmp_path)
    with pytest.raises(RuntimeError, match="run B dies"):  # in A's folder (overrides have their own by default)
        pipeline.run(dataclasses.replace(b, out_dir=a.out_dir), execute, book=False)
    assert "table1" not in json.loads((tmp_path / "smoke" / "stages.json").read_text())
    again = pipeline.run(a, execute, book=False)
    assert again["table1"] == "ran" and again["train_colorgan"] == "cached"


def test_training_stage_reports_resume_progress_and_its_end(tmp_path):
    p = plan.plan("smoke", METHODS, overrides=TINY, results_root=tmp_path)
    p.stages = p.stages[:2]  # data, train_colorgan
    params = p.params["train_colorgan"]
    cfg = ColorGANConfig.from_params(params)
    train_or_reuse(cfg.replace(num_steps=3), ColorGANStep, tmp_path / "cache")  # an earlier session: checkpoint at 3

    def execute(source: Path, output: Path, params: dict) -> None:
        write_output(output)
        if "run_dir" in params:
            train_or_reuse(ColorGANConfig.from_params(params), ColorGANStep, tmp_path / "cache")

    events: list[Event] = []
    assert pipeline.run(p, execute, book=False, on_event=events.append, poll_seconds=0.05)["train_colorgan"] == "ran"
    train_events = [e for e in events if e.stage == "train_colorgan"]
    kinds = [e.kind for e in train_events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    [resume] = [e for e in train_events if e.kind == "resume"]
    assert resume.info == {"step": 3, "total_steps": 6}
    progress = [e.info for e in train_events if e.kind == "train"]
    assert progress[-1]["step"] == 6 and progress[-1]["eta_s"] == 0 and progress[-1]["images_per_s"] > 0
    assert {"g_total", "d_loss"} <= set(progress[-1]["terms"])
    assert [e.kind for e in events if e.stage == "data"] == ["start", "done"]


def test_printer_is_quiet_in_logs_and_live_on_a_terminal():
    events = [Event("train_colorgan", "start"),
              Event("train_colorgan", "resume", {"step": 50, "total_steps": 120}),
              *[Event("train_colorgan", "train", {"step": s, "total_steps": 120, "images_per_s": 20.0,
                                                  "eta_s": 4 * (120 - s), "terms": {"g_total": 1.5}})
                for s in range(55, 125, 5)],
              Event("train_colorgan", "cell", {"cell": 4, "cells": 5, "source": "per_image, summary = ..."}),
              Event("train_colorgan", "done", {"seconds": 95.0, "headline": "PSNR 22.10 dB, SSIM 0.871"})]
    log = io.StringIO()
    printer = ProgressPrinter(log)
    for event in events:
        printer(event)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines[0] == "stage train_colorgan: running"
    assert lines[1] == "resuming train_colorgan at step 50 of 120"
    assert lines[2].startswith("  train_colorgan step 55/120 20.0 img/s ETA 4m20s g_total=1.5")
    assert lines[3:] == ["stage train_colorgan: done in 1m35s; PSNR 22.10 dB, SSIM 0.871"]  # throttled: 1 line

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    printer = ProgressPrinter(screen)
    for event in events:
        printer(event)
    assert screen.getvalue().count("\r") >= 15 and "cell 4/5: per_image" in screen.getvalue()
    assert screen.getvalue().endswith("done in 1m35s; PSNR 22.10 dB, SSIM 0.871\n")


def test_a_stage_of_several_runs_reports_each_run_and_the_stage_eta(tmp_path):
    """A multi-run stage (the study, the ablation) shows which run of how many, its step and speed, and the
    stage's ETA; before issue 20 the watcher followed one run folder and these stages printed nothing."""
    from colorgan.experiments.study import StudyConfig

    configs = [ColorGANConfig.from_params({**TINY, "seed": seed, "progress": False,
                                           "run_dir": str(tmp_path / f"colorgan-s{seed}")}) for seed in (0, 1)]
    p = plan.Plan("toy", tmp_path / "results", {"study": {}}, [plan.Stage("study", StudyConfig)],
                  {"study": [(f"colorgan seed {c.seed}", c.run_dir) for c in configs]})

    def execute(source: Path, output: Path, params: dict) -> None:
        write_output(output)
        for cfg in configs:
            train_or_reuse(cfg, ColorGANStep, tmp_path / "cache")

    events: list[Event] = []
    assert pipeline.run(p, execute, book=False, on_event=events.append, poll_seconds=0.02)["study"] == "ran"
    progress = [e.info for e in events if e.kind == "train"]
    assert {i["run"] for i in progress} == {1, 2} and {i["runs"] for i in progress} == {2}
    assert {i["label"] for i in progress} == {"colorgan seed 0", "colorgan seed 1"}
    first_run = [i for i in progress if i["run"] == 1 and i["step"] < i["total_steps"] and i["eta_s"]]
    assert first_run and all(i["stage_eta_s"] > i["eta_s"] for i in first_run)  # run 2 still to come
    assert progress[-1]["run"] == 2 and progress[-1]["stage_eta_s"] == progress[-1]["eta_s"] == 0
    assert all(i["running"] == 1 and i["done"] == 0 and i["waiting"] == 1 for i in first_run)
    in_flight = [{"label": "colorgan seed 0", "step": 3, "total_steps": 6, "images_per_s": 24.0, "eta_s": 240.0}]
    line = ProgressPrinter.format(Event("study", "train", {**progress[0], "in_flight": in_flight,
                                                            "stage_eta_s": 600.0}))
    assert line == ("  study 1 running · 0 done · 1 waiting · colorgan seed 0 step 3/6 24 img/s ETA 4m00s · "
                    "stage ETA 10m00s")
