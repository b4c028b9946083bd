"""``make reproduce``: profiles -> validated stage parameters -> papermill notebooks -> rendered book.

Each stage is one notebook in ``book/`` whose ``parameters`` cell maps one to one onto a config
dataclass. A stage's cache key hashes its parameters, its notebook, the code of colorgan/ and
baselines/ (``source_hash``) and the keys of the stages it reads from; a stage whose key is
unchanged (and whose output exists) is not run again, so a changed parameter re-runs that stage
and those after it. Training run folders are named by a hash of their
config and the code, so old runs are reused, never overwritten. A run with PARAMS overrides writes
its tables to its own results folder (``results_name``), never over the profile's.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import glob
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from colorgan import runtime
from colorgan.ablation import ABLATION_DIR, ABLATION_EVIDENCE, ABLATION_VARIANTS, AblationConfig
from colorgan.config import ColorGANConfig, DataConfig, ReportConfig, RunConfig, Table1Config
from colorgan.data import find_voc_images
from colorgan.executor import Job, train_runs
from colorgan.executor_config import ExecutorConfig
from colorgan.params import Params
from colorgan.run_store import in_store
from colorgan.source_hash import code_hash
from colorgan.study import StudyConfig
from colorgan.summary import SummaryConfig

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK_SOURCES = REPO_ROOT / "book"

# Settings that every training stage of a profile shares. Values are config fields.
_SMOKE_DATA = {"data": "samples", "image_size": 64, "num_sample_crops": 512}
_SMOKE_TRAIN = {"batch_size": 16, "num_bootstrap": 1000, "checkpoint_every": 50, "log_every": 5}
# The baselines at CPU widths (their defaults are the papers' sizes); see results/baselines-voc-mini/.
_CHROMAGAN_CPU = {"trunk_width": 32, "head_width": 256, "global_dim": 128, "class_hidden": 1024, "decoder_width": 64,
                  "disc_width": 32, "lr_g": 1e-4, "lr_d": 1e-4}
_COLTRAN_CPU = {"coarse_size": 16, "hidden_size": 64, "ff_size": 128, "num_heads": 2, "num_encoder_layers": 2,
                "num_outer_layers": 1, "num_inner_layers": 1, "upsampler_hidden_size": 64, "upsampler_ff_size": 128,
                "upsampler_heads": 2, "num_color_upsampler_layers": 1, "num_spatial_upsampler_layers": 1,
                "spatial_batch_size": 4, "ema_decay": 0.99, "lr": 1e-3}
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    # offline, minutes on a 2-core CPU; numbers NOT comparable with the paper (every page says so)
    "smoke": {
        "data": _SMOKE_DATA,
        "train": {**_SMOKE_DATA, **_SMOKE_TRAIN},
        # bf16 autocast: 2.17x fp32 eager for the ColorGAN step at these widths, 64 px, batch 16 on this AVX512_BF16
        # CPU (results/bench/*-smoke-widths-64px); the baselines stay fp32 until their steps are benchmarked in bf16
        "train_colorgan": {"num_steps": 120, "gen_width": 32, "noise_width": 128, "disc_width": 32, "amp": "bf16"},
        "train_chromagan": {"num_steps": 120, **_CHROMAGAN_CPU},
        # ColTran's upsamplers learn slowly: at 120 steps and lr 1e-3 its images were noise (PSNR 11.6 dB on these
        # crops); 200 steps at lr 3e-3 gave 17.7 dB (1e-2 diverged). ema_decay 0.95: 0.99 would keep 13% of step 1.
        "train_coltran": {**_COLTRAN_CPU, "num_steps": 200, "lr": 3e-3, "ema_decay": 0.95},
    },
    # real photos at 64 px on a CPU in well under an hour
    "voc-mini": {
        "data": {"data": "folder", "image_size": 64},
        "train": {"data": "folder", "image_size": 64, "batch_size": 16, "checkpoint_every": 200, "log_every": 10},
        "train_colorgan": {"num_steps": 1500, "gen_width": 32, "noise_width": 128, "disc_width": 32},
        "train_chromagan": {"num_steps": 1500, "batch_size": 10, **_CHROMAGAN_CPU},
        "train_coltran": {"num_steps": 1500, **_COLTRAN_CPU},
    },
    # the paper's protocol (§3.1): VOC2012, 256 px, 300 epochs, batch 16, ImageNet VGG; GPU work
    "paper": {
        "data": {"data": "voc", "image_size": 256},
        "train": {"data": "voc", "image_size": 256, "batch_size": 16, "num_epochs": 300, "checkpoint_every": 2000,
                  "log_every": 50},
        # the WGAN the paper cites (weight clipping) and fp32: amp='auto' would pick bf16 on a GPU
        "train_colorgan": {"vgg_weights": "imagenet", "adversarial": "wgan-clip", "amp": "off"},
        # ChromaGAN with its ImageNet VGG16 (trunk + class KL teacher); ColTran at its paper sizes (64 px core)
        "train_chromagan": {"vgg_weights": "imagenet"},
        "train_coltran": {"spatial_batch_size": 4},  # 256x256 axial attention: a few images per step
        "ablations": {"base": {"data": "voc", "image_size": 256, "batch_size": 16, "num_epochs": 300,
                               "vgg_weights": "imagenet", "adversarial": "wgan-clip", "amp": "off",
                               "checkpoint_every": 2000, "log_every": 50}},
    },
    # every ablation variant x 3 seeds on voc-mini at 32 px: under an hour on a 2-core CPU
    "ablation-mini": {
        "data": {"data": "folder", "image_size": 32},
        "ablations": {"base": {"data": "folder", "image_size": 32, "batch_size": 16, "num_steps": 150,
                               "gen_width": 16, "gen_max_width": 128, "noise_width": 64, "disc_width": 16,
                               "checkpoint_every": 150, "log_every": 10, "num_bootstrap": 1000}},
    },
}
PROFILES["smoke"]["ablations"] = {"base": {**_SMOKE_DATA, **_SMOKE_TRAIN, **PROFILES["smoke"]["train_colorgan"]},
                                  "seeds": [0, 1]}
# The study (`make reproduce PROFILE=study`, results/study/README.md says how each value was chosen): voc-mini at
# 64 px, every method at CPU widths (same family as the paper's, scaled), batch 16, bf16 autocast (2.17x on this
# CPU: results/bench/*-smoke-widths-64px), 3 seeds, the same number of training images for every method, 160
# training images set aside for validation every 100 steps, and the best-on-validation weights of every run scored on the test split.
_STUDY_BASE = {"data": "folder", "image_size": 64, "batch_size": 16, "amp": "bf16", "num_val_images": 160,
               "val_every": 100, "checkpoint_every": 100, "log_every": 10, "num_bootstrap": 2000}
_STUDY_COLORGAN = {"gen_width": 32, "noise_width": 128, "disc_width": 32}
PROFILES["study"] = {
    "data": {"data": "folder", "image_size": 64},
    "study": {"base": _STUDY_BASE, "seeds": [0, 1, 2], "num_images_seen": 12800,
              "methods": {"colorgan": _STUDY_COLORGAN, "chromagan": _CHROMAGAN_CPU, "coltran": _COLTRAN_CPU}},
    # The paper's claims at the study's size and per-run budget (make ablations PROFILE=study): each loss term,
    # the skips and the noise branch; not the noise_std sweep, which tests no claim. Two seeds, not three: at the
    # measured 0.35 s per step, 9 variants x 3 seeds x 800 steps is 2.1 h of training alone, and the ablation
    # must fit beside the study in one session of these 2 cores; its verdicts pair the same test images.
    "ablations": {"base": {**{k: v for k, v in _STUDY_BASE.items() if k not in ("num_val_images", "val_every")},
                           **_STUDY_COLORGAN, "num_steps": 12800 // 16},
                  "variants": {name: ABLATION_VARIANTS[name] for name in
                               ("full", "no_adversarial", "no_perceptual", "no_l1", "no_ls", "no_noise", "no_skips")},
                  "seeds": [0, 1]},
}
# Relative to the repository root (where make runs); `make data-voc-mini DATA=/path/to/VOCdevkit` builds it.
DEFAULT_DATA_ROOTS = {"voc-mini": "data/voc-mini", "ablation-mini": "data/voc-mini", "study": "data/voc-mini"}
VOC_MINI_HINT = ("build it from VOC2012 with `make data-voc-mini DATA=/path/to/VOCdevkit`, or pass "
                 "DATA=/path/to/voc-mini")


@dataclass(frozen=True)
class Stage:
    """One notebook of the pipeline and the config its parameters map onto."""

    name: str
    config_cls: type[Params]
    reads: tuple[str, ...] = ()  # stages whose outputs this one uses


@dataclass
class Plan:
    """Validated parameters of every stage of one profile, before any work."""

    profile: str
    out_dir: Path
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: list[Stage] = field(default_factory=list)
    # stage -> the runs it trains in order, (label, run_dir): the multi-run stages' progress (study, ablations)
    runs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # stage -> its runs as jobs for the executor (colorgan.executor), trained before its notebook reuses them
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)  # PARAMS as parsed (written to params.json)


def stages_for(methods: dict[str, tuple[type[RunConfig], Any]]) -> list[Stage]:
    """data -> one training stage per method -> table1 -> report."""
    trains = [Stage(f"train_{name}", config_cls, ("data",)) for name, (config_cls, _) in methods.items()]
    train_names = tuple(s.name for s in trains)
    return [Stage("data", DataConfig), *trains, Stage("table1", Table1Config, train_names),
            Stage("report", ReportConfig, (*train_names, "table1"))]


def parse_overrides(text: str) -> dict[str, Any]:
    """'num_epochs=50 lambda_s=0 vgg_weights=random' -> {'num_epochs': 50, 'lambda_s': 0, ...}.

    A name applies to every stage that has that field; 'train_colorgan.gen_width=32' to one stage.
    Lists parse as users type them: ``[a,b]``, ``["a","b"]`` and ``['a','b']`` are all ['a', 'b'].
    """
    overrides = {}
    for item in text.split():
        if "=" not in item:
            raise ValueError(f"PARAMS: {item!r} is not name=value")
        name, raw = item.split("=", 1)
        overrides[name] = _literal(raw)
    return overrides


def _literal(raw: str) -> Any:
    """A Python literal, else a bare word as a string (vgg_weights=random); '[a,b]' is a list of such items."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        pass
    if raw.startswith("[") and raw.endswith("]"):  # bare words in a list: the quotes a shell or make took away
        return [_literal(part.strip()) for part in raw[1:-1].split(",") if part.strip()]
    return raw


def plan(profile: str, methods: dict[str, tuple[type[RunConfig], Any]], data_root: str = "",
         overrides: dict[str, Any] | None = None, results_root: Path = REPO_ROOT / "results",
         kind: str = "reproduce") -> Plan:
    """Resolve and validate every stage's parameters (no data is read, nothing is trained).

    ``kind`` is 'reproduce' (data -> training -> Table 1 -> report) or 'ablations' (the ablation study).

    Raises:
        ValueError: unknown profile, an override no stage knows, or an invalid value (names the field).
        FileNotFoundError: a missing or incomplete data folder.
    """
    wanted = ("train", "study") if kind == "reproduce" else ("ablations",)
    choices = sorted(name for name, preset in PROFILES.items() if any(w in preset for w in wanted))
    if profile not in choices:
        raise ValueError(f"PROFILE: no {kind} profile {profile!r}; choose one of {choices}")
    preset, overrides = PROFILES[profile], dict(overrides or {})
    # a run with overrides gets its own results folder: the committed results/<profile>/ stays as it is
    out_dir = results_root.resolve() / results_name(profile, overrides)
    # paths recorded in parameters are relative to the repository when they can be (portable records)
    shown = repo_relative(out_dir)
    default_root = not data_root
    data_root = data_root or DEFAULT_DATA_ROOTS.get(profile, "")
    given = dict(overrides)  # as typed: the planners below take some apart
    if kind == "ablations":
        planned = _plan_ablations(profile, preset["ablations"], out_dir, shown, data_root, overrides, default_root,
                                  repo_relative(results_root.resolve() / "runs"))
        return dataclasses.replace(planned, overrides=given)
    if "study" in preset:
        planned = _plan_study(profile, preset, methods, out_dir, shown, data_root, overrides, default_root,
                              repo_relative(results_root.resolve() / "runs"))
        return dataclasses.replace(planned, overrides=given)
    result = Plan(profile, out_dir, stages=stages_for(methods), overrides=given)
    _check_overrides(overrides, result.stages)
    _check_data_root(preset["data"]["data"], data_root, default_root)
    # training runs live in the run store whatever the profile and overrides: they are named by what they
    # compute, so an override that changes only Table 1 reuses them, and one that changes training adds one
    runs = repo_relative(results_root.resolve() / "runs")
    for stage in result.stages:
        if stage.name == "data":
            params = {**preset["data"], **({"data_root": data_root} if data_root else {})}
        elif stage.name.startswith("train_"):
            params = {**preset["train"], **preset.get(stage.name, {}),
                      **({"data_root": data_root} if data_root else {}), "progress": False}
        elif stage.name == "table1":
            params = {"run_dirs": [result.params[s]["run_dir"] for s in stage.reads], "out_dir": str(shown)}
        else:
            params = {"run_dirs": result.params["table1"]["run_dirs"], "profile": profile, "out_dir": str(shown)}
        names = {f.name for f in dataclasses.fields(stage.config_cls)}
        params.update({k: v for k, v in overrides.items() if k in names})
        params.update({k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith(stage.name + ".")})
        params = {k: v for k, v in params.items() if k in names}
        if stage.name.startswith("train_"):
            run_cfg = in_store(stage.config_cls.from_params({k: v for k, v in params.items() if k != "run_dir"}), runs)
            params["run_dir"] = run_cfg.run_dir
            result.jobs[stage.name] = [Job(stage.name[6:], run_cfg, methods[stage.name[6:]][1])]
        stage.config_cls.from_params(params)  # validate now, before any stage runs
        result.params[stage.name] = params
    return result


def _plan_ablations(profile: str, preset: dict[str, Any], out_dir: Path, shown: Path, data_root: str,
                    overrides: dict[str, Any], default_root: bool = False, runs_dir: Path = Path("results/runs")) -> Plan:
    """One stage: the ablation notebook. ColorGANConfig overrides go into every variant's base."""
    stage = Stage("ablations", AblationConfig)
    run_fields = {f.name for f in dataclasses.fields(ColorGANConfig)}
    own_fields = {f.name for f in dataclasses.fields(AblationConfig)}
    # 'variants.NAME={...}' replaces (or adds) one variant; the name may itself hold dots (noise_std_0.5)
    one_variant = {k.split(".", 1)[1]: overrides.pop(k) for k in list(overrides) if k.startswith("variants.")}
    if one_variant:
        variants = overrides.get("variants", preset.get("variants", ABLATION_VARIANTS))
        overrides["variants"] = {**variants, **one_variant}
    for name in overrides:
        if name not in run_fields | own_fields:
            close = difflib.get_close_matches(name, run_fields | own_fields, n=1)
            raise ValueError(f"PARAMS: the ablation study has no parameter {name!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else ""))
    _check_data_root(preset["base"]["data"], data_root, default_root)
    base = {**preset["base"], **({"data_root": data_root} if data_root else {}),
            **{k: v for k, v in overrides.items() if k in run_fields}}
    # the ablation's own folder: its tables, verdicts, evidence and metadata never land on the study's files
    params = {"base": base, "out_dir": str(shown / ABLATION_DIR), "runs_dir": str(runs_dir),
              **{k: v for k, v in preset.items() if k != "base"},
              **{k: v for k, v in overrides.items() if k in own_fields}}
    # the variants planned here are the ones the notebook trains: without them it would run its own demo pair
    params.setdefault("variants", ABLATION_VARIANTS)
    from colorgan.ablation import variant_configs
    from colorgan.step import ColorGANStep

    configs = variant_configs(AblationConfig.from_params(params))
    jobs = [Job(f"{name} seed {seed}", c, ColorGANStep) for (name, seed), c in configs.items()]
    return Plan(profile, out_dir, {"ablations": params}, [stage], {"ablations": job_runs(jobs)}, jobs={"ablations": jobs})


def _plan_study(profile: str, preset: dict[str, Any], methods: dict[str, tuple[type[RunConfig], Any]], out_dir: Path,
                shown: Path, data_root: str, overrides: dict[str, Any], default_root: bool = False,
                runs_dir: Path = Path("results/runs")) -> Plan:
    """data -> study (every method x seed, Table 1, curves, figures) -> summary (verdicts on the claims).

    Overrides: StudyConfig fields (``num_images_seen=6400``), ``base.FIELD=value`` for a field every method
    shares, ``METHOD.FIELD=value`` for one method.
    """
    from colorgan.study import run_configs

    stages = [Stage("data", DataConfig), Stage("study", StudyConfig, ("data",)), Stage("summary", SummaryConfig,
                                                                                      ("study",))]
    study = {**preset["study"], "out_dir": str(shown), "runs_dir": str(runs_dir), "base": dict(preset["study"]["base"]),
             "methods": {name: dict(fields) for name, fields in preset["study"]["methods"].items()}}
    if data_root:
        study["base"]["data_root"] = data_root
    own = {f.name for f in dataclasses.fields(StudyConfig)}
    for name, value in overrides.items():
        head, _, rest = name.partition(".")
        if head == "base" and rest:
            study["base"][rest] = value
        elif head in study["methods"] and rest:
            study["methods"][head][rest] = value
        elif name in own:
            study[name] = value
        elif not rest and name in {f.name for f in dataclasses.fields(DataConfig)}:
            study["base"][name] = value
        else:
            close = difflib.get_close_matches(name, own | {f"base.{name}"}, n=1)
            raise ValueError(f"PARAMS: the study has no parameter {name!r}" + (f" (did you mean {close[0]!r}?)"
                                                                                if close else "") +
                             "; use a StudyConfig field, base.FIELD=value or METHOD.FIELD=value")
    _check_data_root(preset["data"]["data"], data_root, default_root)
    configs = run_configs(StudyConfig.from_params(study), methods)  # every run's config, budget and split, checked now
    data = {**preset["data"], **({"data_root": data_root} if data_root else {}),
            **{k: v for k, v in study["base"].items() if k in {f.name for f in dataclasses.fields(DataConfig)}}}
    summary = {"out_dir": str(shown), "ablation_digest": file_digest(out_dir / ABLATION_DIR / ABLATION_EVIDENCE)}
    params = {"data": data, "study": study, "summary": summary}
    for stage in stages:
        stage.config_cls.from_params(params[stage.name])
    jobs = [Job(f"{name} seed {seed}", c, methods[name][1]) for (name, seed), c in configs.items()]
    return Plan(profile, out_dir, params, stages, {"study": job_runs(jobs)}, jobs={"study": jobs})


def job_runs(jobs: list[Job]) -> list[tuple[str, str]]:
    """(label, run_dir) of each job: what the stage's progress shows."""
    return [(j.label, j.cfg.run_dir) for j in jobs]


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes ('' when it does not exist)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def results_name(profile: str, overrides: dict[str, Any]) -> str:
    """The results folder of a profile run: the profile, plus what PARAMS changed when it changed anything.

    'smoke' without overrides; 'smoke+num_steps=80+seed=3' with short plain ones (sorted); any other (paths,
    lists, quotes, long) 'smoke+<8 hex digits of the exact overrides>': ``run`` writes them to the folder's
    ``params.json``, and ``override_folders`` lists them.
    """
    if not overrides:
        return profile
    readable = "+".join(f"{name}={value}" for name, value in sorted(overrides.items()))
    if re.fullmatch(r"[A-Za-z0-9._=+-]{1,40}", readable):
        return f"{profile}+{readable}"
    return f"{profile}+{hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]}"


OVERRIDES_RECORD = "params.json"  # in a results folder made with PARAMS: the profile and the overrides


def override_folders(profile: str, results_root: Path = REPO_ROOT / "results") -> list[tuple[Path, dict[str, Any]]]:
    """Every results folder of ``profile`` made with PARAMS, and its overrides (from its ``params.json``)."""
    found = []
    for record in sorted(Path(results_root).glob(f"{glob.escape(profile)}+*/{OVERRIDES_RECORD}")):
        try:
            found.append((record.parent, json.loads(record.read_text()).get("overrides", {})))
        except ValueError:
            continue  # a torn or hand-edited file: the folder is still there, only not listed
    return found


def repo_relative(path: Path) -> Path:
    """``path`` relative to the repository when it lies inside it (portable records and shorter lines)."""
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


def _check_overrides(overrides: dict[str, Any], stages: list[Stage]) -> None:
    """Every override must name a field of some stage, or 'stage.field' for one stage only."""
    known = {f.name for s in stages for f in dataclasses.fields(s.config_cls)}
    known |= {f"{s.name}.{f.name}" for s in stages for f in dataclasses.fields(s.config_cls)}
    for name in overrides:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"PARAMS: no stage has a parameter {name!r}{hint}")


def _check_data_root(source: str, data_root: str, default_root: bool = False) -> None:
    """The data folder must exist. Relative paths are from the current folder, the repository root under make."""
    if source == "samples":
        return
    if not data_root:
        raise ValueError(f"DATA: this profile reads data={source!r}; pass DATA=/path/to/images")
    root = Path(data_root).expanduser()
    if not root.exists():
        if default_root and data_root in DEFAULT_DATA_ROOTS.values():
            raise FileNotFoundError(f"DATA: the default {data_root} (the voc-mini subset of VOC2012) does not "
                                    f"exist; {VOC_MINI_HINT}")
        raise FileNotFoundError(f"DATA: {root} does not exist")
    if source == "voc":
        images = find_voc_images(root)
        count = sum(1 for _ in images.glob("*.jpg"))
        if count < 17125:
            raise FileNotFoundError(f"DATA: {images} holds {count} JPEGs, VOC2012 has 17,125; the folder is "
                                    "incomplete (re-extract VOCtrainval_11-May-2012.tar or run `make data-voc`)")


# ------------------------------------------------------------------------------------------- run


def stage_key(stage: Stage, params: dict[str, Any], upstream: dict[str, str]) -> str:
    """Hash of the parameters, the notebook's source, the library's code and the keys of the stages it reads."""
    notebook = (BOOK_SOURCES / f"{stage.name}.ipynb").read_bytes()
    payload = json.dumps({"params": params, "reads": {s: upstream[s] for s in stage.reads}, "code": code_hash()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode() + notebook).hexdigest()[:16]


@dataclass(frozen=True)
class Event:
    """What ``run`` reports while it works; the CLI prints these (the library never prints).

    kind and info:
      'start' {}, 'cached' {}: a stage begins, or is skipped because its output is current;
      'resume' {'step', 'total_steps'}: a training stage continues from its last checkpoint;
      'train' {'step', 'total_steps', 'images_per_s', 'eta_s', 'terms'}: the run's ``progress.json``; a stage
          that trains several runs (study, ablations) adds 'run', 'runs' (1-based index and count), 'label'
          ('chromagan seed 2') and 'stage_eta_s' (this run's ETA plus every unfinished run's steps at its pace);
      'cell' {'cell', 'cells', 'source'}: the notebook cell now executing (evaluation shows up here);
      'done' {'seconds', 'headline'}: the stage finished; headline e.g. 'PSNR 22.10 dB, SSIM 0.871' or ''.
    """

    stage: str
    kind: str
    info: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def run(p: Plan, execute: Callable[[Path, Path, dict[str, Any]], None] | None = None,
        book: bool = True, on_event: EventSink | None = None, nproc: dict[str, int] | None = None,
        poll_seconds: float = 1.0, verbose: bool = False, executor: ExecutorConfig | None = None) -> dict[str, str]:
    """Execute the stages whose key changed, then render the book. Returns {stage: 'ran'|'cached'}.

    ``on_event`` receives ``Event``s (from a watcher thread too, every ``poll_seconds``). ``nproc``
    maps a training stage to the number of torchrun processes that train its run before its notebook
    executes (the notebook then reuses the finished run); stages not named train in one process.
    ``verbose``: the notebook kernels' own warnings too (``execute_notebook``).
    ``executor`` (``colorgan.executor``) trains a stage's runs (``Plan.jobs``) before its notebook, in parallel
    workers or as Slurm jobs; the first training stage to run trains every ``train_*`` stage's run at once.
    Without it the notebooks train their runs one after another.
    """
    execute = execute or functools.partial(execute_notebook, verbose=verbose)
    emit = on_event or (lambda event: None)
    notebooks = p.out_dir / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    if p.overrides:  # the folder's name is a digest of these: say what they were
        runtime.write_json(p.out_dir / OVERRIDES_RECORD, {"profile": p.profile, "overrides": p.overrides})
    state_path = p.out_dir / "stages.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    keys, outcome = {}, {}
    for stage in p.stages:
        keys[stage.name] = stage_key(stage, p.params[stage.name], keys)
        output = notebooks / f"{stage.name}.ipynb"
        if state.get(stage.name, {}).get("key") == keys[stage.name] and output.is_file():
            outcome[stage.name] = "cached"
            emit(Event(stage.name, "cached"))
            continue
        # not done until it finishes: a run that fails or is killed from here on must never leave an
        # earlier run's record beside this run's (partial) output notebook, which would read as a cache hit
        if state.pop(stage.name, None) is not None:
            runtime.write_json(state_path, state)
        started = time.monotonic()
        log.debug("stage %s: running %s", stage.name, output)
        emit(Event(stage.name, "start"))
        run_dir = REPO_ROOT / p.params[stage.name]["run_dir"] if "run_dir" in p.params[stage.name] else None
        torchrun = bool(nproc and nproc.get(stage.name, 1) > 1)
        jobs = [] if executor is None or torchrun else executor_jobs(p, stage.name, nproc or {})
        runs = [(label, REPO_ROOT / path) for label, path in (job_runs(jobs) if len(jobs) > 1 else
                                                               p.runs.get(stage.name, []))]
        with StageWatcher(stage.name, output, run_dir if len(runs) <= 1 else None, emit, poll_seconds, runs):
            if torchrun:
                train_with_torchrun(stage.name.removeprefix("train_"), p.params[stage.name], nproc[stage.name],
                                    p.out_dir / "logs" / f"{stage.name}-torchrun.log")
            if jobs:
                train_runs(jobs, executor)
            execute(BOOK_SOURCES / f"{stage.name}.ipynb", output, p.params[stage.name])
        seconds = round(time.monotonic() - started, 1)
        state[stage.name] = {"key": keys[stage.name], "seconds": seconds, "params": p.params[stage.name]}
        runtime.write_json(state_path, state)  # after each stage: a crash keeps what finished
        outcome[stage.name] = "ran"
        emit(Event(stage.name, "done", {"seconds": seconds, "headline": headline(run_dir)}))
    if book:
        build_book(p)
    return outcome


def executor_jobs(p: Plan, stage: str, nproc: dict[str, int]) -> list[Job]:
    """The jobs the executor trains before ``stage``'s notebook: its own, and for a ``train_*`` stage every
    training stage's run (not those trained by torchrun), so independent methods train side by side; a run
    already finished is skipped by the executor."""
    if not stage.startswith("train_"):
        return p.jobs.get(stage, [])
    return [job for name, jobs in p.jobs.items() if name.startswith("train_") and nproc.get(name, 1) <= 1
            for job in jobs]


# The kernel's own log below ERROR: its "running over TCP without encryption" warning (a local kernel that only
# papermill talks to) would otherwise print at every stage. Errors in cells still fail the stage with their traceback.
QUIET_KERNEL = ["--IPKernelApp.log_level=ERROR"]


def execute_notebook(source: Path, output: Path, params: dict[str, Any], verbose: bool = False) -> None:
    """Run one notebook with papermill in the repository root (so relative paths match the CLI's).

    ``verbose``: keep the kernel's warnings (else ``QUIET_KERNEL``)."""
    import papermill

    papermill.execute_notebook(str(source), str(output), parameters=params, kernel_name="python3",
                               cwd=str(REPO_ROOT), progress_bar=False, log_output=False,
                               extra_arguments=[] if verbose else QUIET_KERNEL)


def train_with_torchrun(method: str, params: dict[str, Any], nproc: int, log_path: Path) -> None:
    """Train (or resume) a stage's run on ``nproc`` data-parallel ranks: ``torchrun -m colorgan train``.

    A finished run is left alone. Output goes to ``log_path``; progress shows through ``progress.json``.

    Raises:
        RuntimeError: torchrun failed; the message holds the end of its log.
    """
    run_dir = REPO_ROOT / params["run_dir"]
    if (run_dir / "finished.json").is_file():  # run folders are named by their config's hash
        return
    resume = any((run_dir / "checkpoints").glob("step_*.pt"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "colorgan", "train", "--method", method, "--params", json.dumps({**params, "resume": resume})]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info("training %s on %d processes: %s", method, nproc, " ".join(command))
    with open(log_path, "w") as out:
        completed = subprocess.run(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"torchrun ({nproc} processes) failed training {method} with exit code "
                           f"{completed.returncode}; log {log_path}:\n{tail}")


def headline(run_dir: Path | None) -> str:
    """'PSNR 22.10 dB, SSIM 0.871 (34 test images, step 120)' from a run's evaluation; '' when there is none."""
    summary = run_dir / "eval" / "summary.json" if run_dir else None
    if summary is None or not summary.is_file() or not (run_dir / "config.json").is_file():
        return ""
    record = json.loads(summary.read_text())
    method = json.loads((run_dir / "config.json").read_text()).get("method")
    row = next((r for r in record["summary"] if r["method"] == method), None)
    if row is None:
        return ""
    return (f"PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f} ({row['num_images']} test images, "
            f"step {record['checkpoint_step']})")


class StageWatcher:
    """While a stage executes, turn its runs' ``progress.json`` and the notebook papermill is filling into Events.

    A thread polls every ``poll_seconds``; records older than the stage's start (a previous session's)
    are ignored. Reading a file mid-write just skips that poll. ``runs`` ((label, run_dir) in training
    order) is for a stage that trains several: the newest record among them is the run in progress.
    """

    def __init__(self, stage: str, notebook: Path, run_dir: Path | None, emit: EventSink, poll_seconds: float,
                 runs: list[tuple[str, Path]] | None = None):
        self.stage, self.notebook, self.run_dir, self.emit = stage, notebook, run_dir, emit
        self.runs = runs or []
        self.resumed_runs: set[Path] = set()
        self.pace: float | None = None  # seconds per step of the latest run that reported one
        self.poll_seconds, self.started = poll_seconds, time.time()
        self.last_record: dict[str, Any] | None = None
        self.last_cell: int | None = None
        self.resumed = False
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"watch-{stage}", daemon=True)

    def __enter__(self) -> "StageWatcher":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self._safe_poll()  # the last record (e.g. the final step) even if the stage outran the poll

    def _loop(self) -> None:
        while not self.stop.wait(self.poll_seconds):
            self._safe_poll()

    def _safe_poll(self) -> None:
        try:
            self.poll()
        except Exception as err:  # a watcher must never stop the stage it watches
            log.warning("progress of %s: %s", self.stage, err)

    def poll(self) -> None:
        if self.runs:
            self._poll_runs()
        record = self._read(self.run_dir / "progress.json") if self.run_dir else None
        if record and record.get("time", 0) >= self.started and record != self.last_record:
            self.last_record = record
            if record["start_step"] > 0 and not self.resumed:
                self.resumed = True
                self.emit(Event(self.stage, "resume", {"step": record["start_step"],
                                                       "total_steps": record["total_steps"]}))
            self.emit(Event(self.stage, "train", {k: record[k] for k in
                                                  ("step", "total_steps", "images_per_s", "eta_s", "terms")}))
        notebook = self._read(self.notebook)
        if notebook:
            cells = [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]
            running = [i for i, c in enumerate(cells)
                       if c.get("metadata", {}).get("papermill", {}).get("status") == "running"]
            if running and running[0] != self.last_cell:
                self.last_cell = running[0]
                source = "".join(cells[running[0]].get("source", "")).strip().splitlines()
                self.emit(Event(self.stage, "cell", {"cell": running[0] + 1, "cells": len(cells),
                                                     "source": source[0] if source else ""}))

    def _poll_runs(self) -> None:
        """The newest fresh record among the stage's runs, as a 'train' Event with the run and the stage's ETA."""
        records = [(i, self._read(run_dir / "progress.json")) for i, (_, run_dir) in enumerate(self.runs)]
        fresh = [(r["time"], i, r) for i, r in records if r and r.get("time", 0) >= self.started]
        if not fresh:
            return
        _, index, record = max(fresh)
        if record == self.last_record:
            return
        self.last_record = record
        label, run_dir = self.runs[index]
        if record["start_step"] > 0 and run_dir not in self.resumed_runs:
            self.resumed_runs.add(run_dir)
            self.emit(Event(self.stage, "resume", {"step": record["start_step"], "total_steps": record["total_steps"],
                                                   "label": label}))
        # in flight: a fresh record and no finish yet (runs of parallel workers); done: finished, now or before
        done = {i for i, (_, run_dir) in enumerate(self.runs) if (run_dir / "finished.json").is_file()}
        in_flight = [(i, r) for _, i, r in sorted(fresh, key=lambda t: t[1]) if i not in done]
        info = {k: record[k] for k in ("step", "total_steps", "images_per_s", "eta_s", "terms")}
        info.update({"run": index + 1, "runs": len(self.runs), "label": label,
                     "running": len(in_flight), "done": len(done),
                     "waiting": len(self.runs) - len(done) - len(in_flight),
                     "in_flight": [{"label": self.runs[i][0], **{k: r[k] for k in
                                                                 ("step", "total_steps", "images_per_s", "eta_s")}}
                                   for i, r in in_flight],
                     "stage_eta_s": self._stage_eta(record, in_flight, done)})
        self.emit(Event(self.stage, "train", info))

    def _stage_eta(self, record: dict[str, Any], in_flight: list[tuple[int, dict[str, Any]]],
                   done: set[int]) -> float | None:
        """Seconds left in the stage: the in-flight runs' ETAs plus each waiting run's steps at the latest known
        pace, shared by as many workers as are running (runs of other methods may be faster or slower: an
        estimate that sharpens as runs finish)."""
        eta, left = record.get("eta_s"), record["total_steps"] - record["step"]
        if eta is None:
            return None
        if left > 0 and eta > 0:
            self.pace = eta / left  # seconds per step
        etas = [r.get("eta_s") or 0.0 for _, r in in_flight] or [eta]
        started = {i for i, _ in in_flight}
        waiting = [run_dir for i, (_, run_dir) in enumerate(self.runs) if i not in done | started]
        if not waiting:
            return max(etas)
        if self.pace is None:
            return None
        queued = sum(_total_steps(run_dir, record["total_steps"]) * self.pace for run_dir in waiting)
        return max(max(etas), (sum(etas) + queued) / len(etas))

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text()) if path.stat().st_mtime >= self.started - 1 else None
        except (OSError, ValueError):  # absent, or caught mid-write (papermill rewrites the notebook in place)
            return None


def _total_steps(run_dir: Path, default: int) -> int:
    """A run's planned steps from its progress record (a run not started yet: ``default``)."""
    try:
        return int(json.loads((run_dir / "progress.json").read_text())["total_steps"])
    except (OSError, ValueError, KeyError):
        return default


# ------------------------------------------------------------------------------------------ book


BOOK_CONFIG = """\
title: "colorgan-repro: {profile} profile"
author: colorgan-repro contributors
copyright: "2026"
only_build_toc_files: true
execute:
  execute_notebooks: "off"   # papermill already ran them; the book only renders
parse:
  myst_enable_extensions: [colon_fence]   # no dollar-math: the book must load nothing from a CDN
sphinx:
  config:
    mathjax_path: "no-math-in-this-book.js"
    nb_ipywidgets_js: {{}}
    html_show_sourcelink: false
    html_static_path: [_static]
    html_css_files: [report.css]   # tables that fit a phone, wide ones scrolling in their own box
    html_theme_options:
      use_download_button: false
      use_fullscreen_button: false
      use_repository_button: false
      launch_buttons: {{}}
"""
# Cells a reader of the book never needs: papermill's parameter cells (the chapter shows "what it ran with").
HIDDEN_CELL_TAGS = ("parameters", "injected-parameters")


def build_book(p: Plan) -> Path:
    """Copy the executed notebooks beside a generated intro page and render static HTML (offline).

    Build warnings are errors (``-W``): a broken image or reference fails the build, not the reader.
    """
    import nbformat

    source = p.out_dir / "book"
    if source.exists():
        shutil.rmtree(source)
    source.mkdir(parents=True)
    (source / "_config.yml").write_text(BOOK_CONFIG.format(profile=p.profile))
    shutil.copytree(BOOK_SOURCES / "_static", source / "_static")
    # every executed notebook of this profile: a reproduce run and an ablation study share one book
    rank = {"data": 0, "table1": 2, "study": 2, "summary": 3, "report": 3, "ablations": 4}  # train_* rank 1
    executed = {path.stem for path in (p.out_dir / "notebooks").glob("*.ipynb")}
    chapters = sorted(executed, key=lambda name: (rank.get(name, 1), name))
    for name in chapters:
        nb = nbformat.read(p.out_dir / "notebooks" / f"{name}.ipynb", as_version=4)
        for cell in nb.cells:
            tags = cell.metadata.setdefault("tags", [])
            if any(tag in tags for tag in HIDDEN_CELL_TAGS) and "remove-cell" not in tags:
                tags.append("remove-cell")
        nbformat.write(nb, source / f"{name}.ipynb")
    for figure in [*p.out_dir.glob("*.png"), *(p.out_dir / ABLATION_DIR).glob("*.png")]:  # the front page's figures
        shutil.copy(figure, source / figure.name)
    toc = ("format: jb-book\nroot: intro\nchapters:\n" + "".join(f"  - file: {name}\n" for name in chapters)
           if chapters else "format: jb-article\nroot: intro\n")  # a results folder with no chapter yet
    (source / "_toc.yml").write_text(toc)
    (source / "intro.md").write_text(intro_page(p))
    command = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source), "--path-output",
               str(p.out_dir / "html-build"), "-W", "--keep-going"]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    html = p.out_dir / "html-build" / "_build" / "html"
    log.debug("book: %s", html / "index.html")  # cli.py prints the path once, with the time
    return html


def intro_page(p: Plan) -> str:
    """The book's front page: the answer first (what the profile's results folder holds: Table 1 against
    the grayscale row and the paper, verdicts, time and machine), its caveats, then the paper in brief."""
    from colorgan.published import paper_table1
    from colorgan.report import comparability_note, headline

    # the ColorGAN run's protocol; an experiment of variants (ablations, a study) shares its base config's,
    # with a study's own ColorGAN fields on top (its widths are the ones that ran, not the defaults)
    params = p.params.get("train_colorgan") or next(
        ({**v["base"], **v.get("methods", {}).get("colorgan", {})} for v in p.params.values()
         if isinstance(v.get("base"), dict)), None)
    note = (comparability_note(ColorGANConfig.from_params(params).to_dict()) if params is not None else
            "Each chapter says how its runs differ from the paper's protocol.")
    figures = [f"```{{figure}} {name}\n:width: 100%\n:alt: {caption}\n\n{caption} (click to enlarge)\n```\n"
               for name, caption in FRONT_FIGURES.items()
               if (p.out_dir / name).is_file() or (p.out_dir / ABLATION_DIR / name).is_file()]
    return (BOOK_SOURCES / "intro.md").read_text().format(
        profile=p.profile, comparability=note, paper=paper_table1(),
        headline=headline(p.out_dir) or "*No results in this folder yet.*", figures="\n".join(figures))


# Figures the front page shows when the profile's results folder has them: file -> caption.
FRONT_FIGURES = {
    "learning_curves.png": "Every run scored on its validation images during training (seeds as thin lines, "
                           "grayscale dashed): where the curves flatten, the budget was enough",
    "metric_distributions.png": "Per-image PSNR and SSIM of every method (each dot one test image)",
    "ablation_deltas.png": "The ablation: each variant's difference to the full model, with its 95% interval",
}
