"""Planning ``make reproduce``: a profile (``colorgan.reproduce.profiles``) and PARAMS -> every stage's validated
parameters and cache key, before any work.

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
import glob
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorgan.common.params import Params, field_default
from colorgan.experiments.ablation import ABLATION_DIR, ABLATION_EVIDENCE, ABLATION_VARIANTS, AblationConfig
from colorgan.experiments.executor import Job
from colorgan.experiments.study import StudyConfig
from colorgan.method.config import ColorGANConfig, DataConfig, RunConfig
from colorgan.method.data import find_voc_images
from colorgan.report.run_pages import ReportConfig
from colorgan.report.summary import SummaryConfig
from colorgan.report.table1 import Table1Config
from colorgan.reproduce.profiles import DEFAULT_DATA_ROOTS, PROFILES, VOC_MINI_HINT
from colorgan.training.run_store import in_store
from colorgan.training.source_hash import code_hash

REPO_ROOT = Path(__file__).resolve().parents[2]
BOOK_SOURCES = REPO_ROOT / "book"


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
    # stage -> its runs as jobs for the executor (colorgan.experiments.executor), trained before its notebook reuses them
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
            # every field, not only the profile's: the notebook's parameters cell holds small demo values, and a
            # field left to it would train another config than the run store's name (and the executor) say
            params = {f.name: getattr(run_cfg, f.name) for f in dataclasses.fields(run_cfg)}
            result.jobs[stage.name] = [Job(stage.name[6:], run_cfg, methods[stage.name[6:]][1])]
        result.params[stage.name] = every_field(stage.config_cls, params)  # validated now, before any stage runs
    return result


def every_field(config_cls: type[Params], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` validated and completed with the config's defaults: a notebook's parameters cell holds small
    demo values, and a field left to it would run another experiment than the one planned (and keyed)."""
    config_cls.from_params(params)
    return {**{f.name: field_default(f) for f in dataclasses.fields(config_cls)}, **params}


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
    params = every_field(AblationConfig, {"variants": ABLATION_VARIANTS, **params})
    from colorgan.experiments.ablation import variant_configs
    from colorgan.method.step import ColorGANStep

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
    from colorgan.experiments.study import run_configs

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
    params = {stage.name: every_field(stage.config_cls, {"data": data, "study": study, "summary": summary}[stage.name])
              for stage in stages}
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


def stage_key(stage: Stage, params: dict[str, Any], upstream: dict[str, str]) -> str:
    """Hash of the parameters, the notebook's source, the library's code and the keys of the stages it reads."""
    notebook = (BOOK_SOURCES / f"{stage.name}.ipynb").read_bytes()
    payload = json.dumps({"params": params, "reads": {s: upstream[s] for s in stage.reads}, "code": code_hash()},
                         sort_keys=True)
    return hashlib.sha256(payload.encode() + notebook).hexdigest()[:16]
