"""Command line: ``colorgan train | evaluate | score | colorize | reproduce | ablations | bench | gpu-check |
mutation | data-voc | data-voc-mini`` (parsing and printing only).

One job, over 400 lines because it has eleven commands: each is a parser and a short ``cmd_*`` that calls the
library; the work lives below it.

Training flags are generated from the method's config dataclass, so there is no second list of
options: ``colorgan train --image-size 64 --num-steps 200 --no-use-noise``. Under
``torchrun --nproc_per_node=N -m colorgan train ...`` training runs data-parallel on N ranks.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import logging
import os
import sys
import time
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

# Only light modules at import: `colorgan --help` and a mistyped flag answer at once. torch, torchvision (the
# baselines), pandas and matplotlib are imported inside the commands that need them.
from colorgan.common.params import Params, field_default
from colorgan.experiments.executor_config import ExecutorConfig
from colorgan.method.config import ColorGANConfig, RunConfig
from colorgan.performance.bench_config import BenchConfig
from colorgan.performance.gpu_check_config import GpuCheckConfig
from colorgan.report.table1 import Table1Config

if TYPE_CHECKING:
    from colorgan.training.train import StepFactory

METHOD_KEYS = ("colorgan", "chromagan", "coltran")  # the keys of ``methods()``, known without importing torch
# how test photos reach a run's size (``testset.PROTOCOLS``, as the Table 1 config lists them)
PROTOCOLS = next(f.metadata["choices"] for f in dataclasses.fields(Table1Config) if f.name == "protocol")


@functools.cache
def methods() -> dict[str, tuple[type[RunConfig], StepFactory]]:
    """Method name -> (config class, step factory). Baselines register here (and only here)."""
    from baselines.chromagan import ChromaGANConfig, ChromaGANStep
    from baselines.coltran import ColTranConfig, ColTranStep
    from colorgan.method.step import ColorGANStep

    registry = {"colorgan": (ColorGANConfig, ColorGANStep), "chromagan": (ChromaGANConfig, ChromaGANStep),
                "coltran": (ColTranConfig, ColTranStep)}
    assert tuple(registry) == METHOD_KEYS, "METHOD_KEYS lists the registry's methods"
    return registry


def __getattr__(name: str) -> Any:
    """``from colorgan.cli import METHODS`` (notebooks, tests): the registry, imported on first use."""
    if name == "METHODS":
        return methods()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def method_config(method: str) -> type[RunConfig]:
    """A method's config class; ColorGAN's without importing torch (the baselines' live beside their models)."""
    return ColorGANConfig if method == ColorGANConfig.method else methods()[method][0]


def add_config_flags(parser: argparse.ArgumentParser, config_cls: type[Params]) -> None:
    """One ``--flag`` per dataclass field, typed and documented from the field's metadata."""
    hints = typing.get_type_hints(config_cls)
    group = parser.add_argument_group(f"{config_cls.__name__} fields")
    for f in dataclasses.fields(config_cls):
        flag, kind = "--" + f.name.replace("_", "-"), hints[f.name]
        # argparse %-formats help strings: a literal '%' (as in '95% intervals') must be doubled
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r})".replace("%", "%%")
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text)
        else:
            group.add_argument(flag, dest=f.name, type=kind, default=None, choices=f.metadata.get("choices"),
                               metavar=kind.__name__.upper(), help=help_text)


def config_from_args(config_cls: type[Params], args: argparse.Namespace) -> Params:
    """Fields given on the command line (or in --params JSON) override the dataclass defaults."""
    return config_cls.from_params(given_params(config_cls, args))


def given_params(config_cls: type[Params], args: argparse.Namespace) -> dict[str, Any]:
    """The fields set on the command line: --params JSON, then the flags given (flags win)."""
    try:
        params: dict[str, Any] = json.loads(args.params) if args.params else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"--params: not valid JSON ({err}); give an object such as '{{\"num_steps\": 5}}'") from None
    for f in dataclasses.fields(config_cls):
        value = getattr(args, f.name, None)
        if value is not None:
            params[f.name] = value
    return params


def resumed_config(config_cls: type[RunConfig], args: argparse.Namespace) -> RunConfig:
    """``train --resume``: the run's saved config.json, with the given flags changing only what may change.

    ``checkpoints.RESUMABLE_CHANGES`` lists those fields (budget, bookkeeping, speed switches); a flag that
    sets another field to a new value is an error naming it. A run_dir without config.json trains from
    scratch with the flags given, as without --resume.
    """
    from colorgan.training.checkpoints import RESUMABLE_CHANGES

    given = given_params(config_cls, args)
    defaults = {f.name: field_default(f) for f in dataclasses.fields(config_cls)}
    run_dir = Path(given.get("run_dir", defaults["run_dir"]))
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        return config_cls.from_params(given)
    saved = json.loads(config_path.read_text())
    method = saved.pop("method", None)
    if method != config_cls.method:
        raise ValueError(f"--resume: {run_dir} holds a {method!r} run; pass --method {method}")
    fixed = {k: v for k, v in given.items() if k not in RESUMABLE_CHANGES | {"run_dir"} and saved.get(k) != v}
    if fixed:
        detail = ", ".join(f"--{k.replace('_', '-')} {v!r} (saved: {saved.get(k)!r})" for k, v in sorted(fixed.items()))
        raise ValueError(f"--resume continues {run_dir} with its saved config.json, and {detail} may not change "
                         f"there; only {', '.join(sorted(RESUMABLE_CHANGES - {'resume'}))} may. Start a new "
                         "--run-dir to train with other settings")
    return config_cls.from_params({**saved, **given, "run_dir": str(run_dir), "resume": True})


def build_parser(method: str = "colorgan") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorgan", description="ColorGAN reproduction suite")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a method; writes a run folder")
    train.add_argument("--method", choices=sorted(METHOD_KEYS), default="colorgan")
    train.add_argument("--params", help="JSON object of config fields (flags override it)")
    add_config_flags(train, method_config(method))

    evaluate = commands.add_parser("evaluate", help="PSNR/SSIM with 95%% intervals on a run's test split")
    evaluate.add_argument("run_dirs", nargs="+", type=Path, help="run folder(s) written by `colorgan train`")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.add_argument("--diversity", type=int, default=0, metavar="K",
                          help="also measure diversity over K >= 2 noise samples per image")
    evaluate.add_argument("--data", choices=["folder"], help="score on another test set: a folder of photos "
                          "(--data-root) instead of the run's own test split")
    evaluate.add_argument("--data-root", type=Path, help="the test folder (sub-folders included)")
    evaluate.add_argument("--protocol", choices=list(PROTOCOLS), default="resize",
                          help="how photos reach the run's size: resize (whole photo, the paper's) or "
                               "center-crop (centre square, then resize: ImageNet val5k)")
    evaluate.add_argument("--name", help="results folder under <run>/eval/ (default: the folder's name)")
    evaluate.add_argument("--checkpoint", type=checkpoint_choice, default="last", metavar="best_val|last|STEP",
                          help="the weights to score: the newest (default), the best on validation (what the "
                               "study scores), or a kept step; results go to eval/.../checkpoint-<it>/ unless 'last'")
    add_weight_flags(evaluate)
    add_convention_flag(evaluate)

    score = commands.add_parser("score", help="score a folder of colorized images from any tool against ground truth")
    score.add_argument("pred_dir", type=Path, help="colorized images (matched to ground truth by path and stem)")
    score.add_argument("gt_dir", type=Path, help="ground-truth colour photos")
    score.add_argument("--name", help="method name in the tables (default: the prediction folder's name)")
    score.add_argument("--protocol", choices=list(PROTOCOLS), default="resize",
                       help="how the ground truth is brought to the predictions' size")
    score.add_argument("-o", "--output", type=Path, help="results folder (default: results/score/<name>)")
    score.add_argument("--device", default="auto")
    add_weight_flags(score)
    add_convention_flag(score)

    reproduce = commands.add_parser("reproduce", help="run the book's notebooks for a profile and render the book")
    reproduce.add_argument("--profile", default="smoke", help="smoke (default, offline), voc-mini or paper")
    reproduce.add_argument("--data", default="", help="data folder for profiles that need one")
    reproduce.add_argument("--params", default="", help="overrides as 'name=value name=value'")
    reproduce.add_argument("--book-only", action="store_true", help="only re-render the book")
    reproduce.add_argument("--nproc", type=int, default=1,
                           help="train each stage on N data-parallel processes (torchrun; one per GPU)")
    add_config_flags(reproduce, ExecutorConfig)

    ablations = commands.add_parser("ablations", help="run the ablation study of a profile and render it")
    ablations.add_argument("--profile", default="smoke", help="smoke (default, offline), ablation-mini (voc-mini), "
                           "study or paper")
    ablations.add_argument("--data", default="", help="data folder for profiles that need one")
    ablations.add_argument("--params", default="", help="overrides as 'name=value name=value'")
    for pipeline_parser in (reproduce, ablations):
        pipeline_parser.add_argument("-v", "--verbose", action="store_true",
                                     help="also show papermill's per-cell log and the notebook kernels' warnings")
    add_config_flags(ablations, ExecutorConfig)

    data_voc = commands.add_parser("data-voc", help="fetch and verify PASCAL VOC2012 (torchvision's checksum)")
    data_voc.add_argument("--root", type=Path, default=Path("data"), help="where VOCdevkit/ goes")

    voc_mini = commands.add_parser("data-voc-mini", help="build (or verify) voc-mini, the 2,250-photo VOC2012 subset "
                                   "of the voc-mini and ablation-mini profiles, checking every file's SHA-256")
    voc_mini.add_argument("--voc", type=Path, default=None, help="a VOC2012 copy: VOCdevkit, VOC2012 or JPEGImages "
                          "folder (not needed to verify an existing --out)")
    voc_mini.add_argument("--out", type=Path, default=Path("data/voc-mini"), help="where voc-mini goes "
                          "(default: data/voc-mini, the profiles' default data folder)")

    colorize = commands.add_parser("colorize", help="colorize your own photos (any size and mode)")
    colorize.add_argument("inputs", nargs="+", type=Path, help="image files and folders (walked, tree kept)")
    colorize.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    colorize.add_argument("--run", type=Path, required=True, help="trained run folder")
    colorize.add_argument("--device", default="auto")
    colorize.add_argument("--seed", type=int, default=0, help="seed of the noise z")
    colorize.add_argument("--protocol", choices=list(PROTOCOLS), default=None,
                          help="write the model-size result, the photo prepared like `evaluate --protocol` "
                               "(for `colorgan score`); default: full resolution with the photo's own L")
    colorize.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")

    bench = commands.add_parser("bench", help="speed of training, inference and the input pipeline; "
                                "writes results/bench/<device>.json and .md")
    bench.add_argument("--params", help="JSON object of BenchConfig fields (flags override it)")
    add_config_flags(bench, BenchConfig)

    mutation = commands.add_parser("mutation", help="mutation testing of the numbers core (mutmut, pyproject's "
                                   "[tool.mutmut]); writes results/mutation/{report.md,summary.json,survivors.csv}")
    mutation.add_argument("mutants", nargs="*", help="mutant name globs, e.g. 'colorgan.method.color.*' (default: every "
                          "module listed in only_mutate)")
    mutation.add_argument("--jobs", type=int, default=None, help="test processes at once (default: every core)")
    mutation.add_argument("--out", default="results/mutation", help="report folder")
    mutation.add_argument("--resume", action="store_true", help="keep mutmut's earlier results (mutants/): run only "
                          "mutants without one, or those named (e.g. the survivors after new tests)")
    mutation.add_argument("--report-only", action="store_true", help="rewrite the report from mutants/ and "
                          "survivors.toml without running mutmut")

    compare = commands.add_parser("compare", help="how two runs of one experiment differ image by image (e.g. the "
                                  "study with WORKERS=1 and WORKERS=2): identical rows, largest difference, seed spread")
    compare.add_argument("first", type=Path, help="a study's or an ablation's results folder, or a per-image CSV")
    compare.add_argument("second", type=Path, help="the same experiment run again")
    compare.add_argument("-o", "--output", type=Path, help="also write the table as Markdown to this file")

    gpu_check = commands.add_parser("gpu-check", help="correctness of every speed switch, method and DDP + resume, "
                                    "then the bench; writes results/gpu-check/<device>.{json,md} (--tiny: CPU, CI)")
    gpu_check.add_argument("--params", help="JSON object of GpuCheckConfig fields (flags override it)")
    add_config_flags(gpu_check, GpuCheckConfig)
    return parser


def add_weight_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inception-weights", default="auto",
                        help="FID Inception: auto (its file in the torch hub cache, if present: "
                             "docs/benchmark-your-colorizer.md, 'Inception and LPIPS weights'), off, or a file")
    parser.add_argument("--lpips-weights", default="auto",
                        help="LPIPS linear weights: auto (their file in the torch hub cache, if present), off, or a file")


def add_convention_flag(parser: argparse.ArgumentParser) -> None:
    from colorgan.common.published import CONVENTION_CHOICES

    # default 'all': one line per metric fits every variant, and a reader who does not know that DDColor's and
    # CT2's colourfulness differ from Hasler-Süsstrunk's still sees both, each under its own name
    parser.add_argument("--convention", choices=CONVENTION_CHOICES, default="all",
                        help="which metric variants to print: this suite's (paper), DDColor's or CT2's released "
                             "evaluation code, or all (default); every variant is saved either way")


def run_method(run_dir: Path) -> str:
    """The method name recorded in a run folder's config.json."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json)")
    method = json.loads(config_path.read_text()).get("method")
    if method not in METHOD_KEYS:
        raise ValueError(f"{run_dir}: unknown method {method!r}; known: {sorted(METHOD_KEYS)}")
    return method


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # the method decides which config flags exist, so read it first
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default="colorgan", choices=sorted(METHOD_KEYS))
    known, _ = pre.parse_known_args(argv)
    args = build_parser(known.method).parse_args(argv)
    from colorgan.common import distributed  # torch: after parsing, so that --help and a bad flag answer at once

    ctx = distributed.from_environment(os.environ)
    # under torchrun the other ranks only report problems
    logging.basicConfig(level=logging.INFO if ctx.is_main else logging.WARNING,
                        format=f"%(levelname)s {f'[rank {ctx.rank}] ' if ctx.enabled else ''}%(name)s: %(message)s")
    # papermill logs every cell at INFO: the pipeline's stage lines say enough unless -v asks for more
    logging.getLogger("papermill").setLevel(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError, OSError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def cmd_train(args: argparse.Namespace) -> int:
    from colorgan.training.train import train

    from colorgan.common import distributed

    config_cls, build_step = methods()[args.method]
    # validated here, before any data is read
    cfg = resumed_config(config_cls, args) if args.resume else config_from_args(config_cls, args)
    ctx = distributed.from_environment(os.environ)
    result = train(cfg, build_step, ctx=ctx)
    state = "stopped at max_minutes" if result.stopped_early else "finished"
    if ctx.is_main:
        ranks = f" on {ctx.world_size} ranks" if ctx.enabled else ""
        print(f"{cfg.method}: {state} after {result.step}/{result.total_steps} steps{ranks} in "
              f"{result.wall_seconds:.0f} s; run folder {result.run_dir}")
    return 0


def checkpoint_choice(value: str) -> str:
    """--checkpoint: 'best_val', 'last' or a step number (argparse type)."""
    if value in ("best_val", "last") or value.isdigit():
        return value
    raise argparse.ArgumentTypeError(f"{value!r} is not a checkpoint; give best_val, last or a step number (e.g. 400)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from colorgan.common.published import summary_columns
    from colorgan.evaluation.evaluate import eval_dir, evaluate_run, format_summary, test_set_name

    if args.data_root is not None and args.data is None:
        args.data = "folder"
    if args.data == "folder" and args.data_root is None:
        raise ValueError("--data folder needs --data-root DIR, the folder of test photos")
    if args.data is None and (args.protocol != "resize" or args.name):
        raise ValueError("--protocol and --name apply to another test set: add --data folder --data-root DIR "
                         "(a run's own split is always prepared as it was trained, by resizing)")
    test_name = (args.name or test_set_name(args.data_root, args.protocol)) if args.data else None
    for run_dir in args.run_dirs:
        config_cls, build_step = methods()[run_method(run_dir)]
        _, summary = evaluate_run(run_dir, config_cls, build_step, args.device, args.batch_size, args.diversity,
                                  test_root=args.data_root, protocol=args.protocol, test_name=test_name,
                                  inception_weights=args.inception_weights, lpips_weights=args.lpips_weights,
                                  checkpoint=args.checkpoint)
        out = eval_dir(run_dir, test_name, args.checkpoint)
        record = json.loads((out / "summary.json").read_text())
        test = record["test_set"]
        where = (f"test folder {test['path']} ({test['num_images']} of {test['num_files']} files, "
                 f"protocol {test['protocol']})" if args.data else "its own test split")
        print(f"\n{run_dir} on {where} ({args.checkpoint} checkpoint, step {record['checkpoint_step']}, "
              f"{record['image_size']} px, "
              f"vgg_weights={record.get('vgg_weights', 'n/a')}, device {record['device_name']}) -> {out}")
        if record.get("notes"):  # e.g. ChromaGAN's class KL term off: shown beside the numbers, never silent
            print(f"notes: {record['notes']}")
        for line in test.get("skipped", []):
            print(f"skipped: {line}", file=sys.stderr)
        print(format_summary(summary, summary_columns(args.convention)))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from colorgan.common import runtime
    from colorgan.common.published import summary_columns
    from colorgan.evaluation.evaluate import format_summary
    from colorgan.evaluation.score import save_score, score_folders
    from colorgan.measures.feature_nets import load_feature_nets

    device = runtime.select_device(args.device)
    nets = load_feature_nets(args.inception_weights, args.lpips_weights, device)
    result = score_folders(args.pred_dir, args.gt_dir, args.name, args.protocol, nets, device=device)
    out = save_score(result, args.output or Path("results") / "score" / result.record["method"])
    for line in result.problems:
        print(f"skipped: {line}", file=sys.stderr)
    for line in result.warnings:
        print(f"warning: {line}", file=sys.stderr)
    made_by = result.record.get("colorize")
    named = f" (row name from {args.pred_dir / 'colorize.json'})" if made_by and not args.name else ""
    print(f"{result.record['provenance']}, ground truth {args.gt_dir}, protocol {args.protocol} -> {out}{named}")
    print(format_summary(result.summary, summary_columns(args.convention)))
    print(format_vs_gray(result.record["method"], result.record["vs_gray"]))
    if result.problems:
        print(f"{len(result.problems)} file(s) skipped (listed above); the other {result.record['num_images']} "
              "were scored", file=sys.stderr)
    return 1 if result.problems else 0


def format_vs_gray(name: str, deltas: dict[str, float]) -> str:
    """'name vs grayscale (same images, paired 95% interval): PSNR +1.234 dB [0.9, 1.5], ...'."""
    units = {"psnr": ("PSNR", " dB", 3), "ssim": ("SSIM", "", 4), "ciede2000": ("ΔE00", "", 2),
             "lpips": ("LPIPS", "", 4)}
    parts = [f"{label} {deltas[f'{k}_vs_gray']:+.{d}f}{unit} [{deltas[f'{k}_vs_gray_low']:+.{d}f}, "
             f"{deltas[f'{k}_vs_gray_high']:+.{d}f}]"
             for k, (label, unit, d) in units.items() if f"{k}_vs_gray" in deltas]
    return f"{name} minus grayscale (same images, paired 95% interval): " + "; ".join(parts)


def cmd_colorize(args: argparse.Namespace) -> int:
    from colorgan.common import runtime
    from colorgan.evaluation.inference import colorize_files
    from colorgan.training.train import load_trained

    from colorgan.evaluation.evaluate import checkpoint_digest

    method = run_method(args.run)
    config_cls, build_step = methods()[method]
    device = runtime.select_device(args.device)
    cfg, step, checkpoint_step = load_trained(args.run, config_cls, build_step, device, inference_only=True)
    record = {"name": f"{method} ({Path(args.run).resolve().name}, step {checkpoint_step})",
              "run": str(Path(args.run).resolve()), "method": method, "checkpoint_step": checkpoint_step,
              "checkpoint_digest": checkpoint_digest(Path(args.run)), "git_commit": runtime.git_commit(),
              "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    outcomes = colorize_files(args.inputs, args.output, step.colorize, cfg.image_size, device, args.seed,
                              protocol=args.protocol, progress=args.progress, record=record)
    failed = [o for o in outcomes if o.error and not o.skipped]
    skipped = [o for o in outcomes if o.skipped]
    for outcome in outcomes:
        if outcome.error:
            print(f"{'skipped' if outcome.skipped else 'failed'}: {outcome.source}: {outcome.error}", file=sys.stderr)
    done = len(outcomes) - len(failed) - len(skipped)
    print(f"colorized {done} of {done + len(failed)} image(s) into {args.output}"
          + (f"; skipped {len(skipped)} non-image file(s)" if skipped else ""))
    return 1 if failed else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from colorgan.reproduce import book_build, pipeline, plan
    from colorgan.reproduce.progress import ProgressPrinter

    started = time.monotonic()
    kind = "ablations" if args.command == "ablations" else "reproduce"
    # every stage's parameters are validated here, before any notebook runs
    p = plan.plan(args.profile, methods(), args.data, plan.parse_overrides(args.params), kind=kind)
    if getattr(args, "book_only", False):
        html = book_build.build_book(p)
    else:
        nproc = stage_processes(getattr(args, "nproc", 1))
        executor = ExecutorConfig.from_params({f.name: getattr(args, f.name) for f in dataclasses.fields(ExecutorConfig)
                                               if getattr(args, f.name, None) is not None})
        outcome = pipeline.run(p, on_event=ProgressPrinter(sys.stdout), nproc=nproc, executor=executor,
                               verbose=args.verbose)
        for stage, state in outcome.items():
            print(f"  {stage:<18} {state}")
        html = p.out_dir / "html-build" / "_build" / "html"
    if kind == "ablations":
        print(f"ablation results: {plan.repo_relative(p.out_dir / 'ablation')}/ (tables, chart, verdicts)")
    print(f"book: {html / 'index.html'} ({time.monotonic() - started:.0f} s)")
    folders = plan.override_folders(p.profile)
    if folders:
        print(f"results of {p.profile} with PARAMS (each folder's params.json holds its overrides):")
        for folder, overrides in folders:
            print(f"  {plan.repo_relative(folder)}  " + " ".join(f"{k}={v!r}" for k, v in overrides.items()))
    return 0


def stage_processes(nproc: int) -> dict[str, int]:
    """{training stage: processes}: ``nproc`` for methods whose step can train data-parallel, else 1 (said so)."""
    if nproc < 1:
        raise ValueError(f"--nproc: {nproc} is not allowed; give 1 or more processes")
    if nproc == 1:
        return {}
    single = [name for name, (_, factory) in methods().items() if not hasattr(factory, "distribute")]
    if single:
        print(f"note: {', '.join(single)} train(s) in one process (no data-parallel step); the others on {nproc}")
    return {f"train_{name}": nproc for name in methods() if name not in single}


def cmd_data_voc(args: argparse.Namespace) -> int:
    from colorgan.method.data import fetch_voc

    print(f"VOC2012 JPEGImages ready at {fetch_voc(args.root)}")
    return 0


def cmd_data_voc_mini(args: argparse.Namespace) -> int:
    from colorgan.tools import voc_mini

    if args.voc is None and not args.out.exists():
        raise ValueError(f"--voc: {args.out} does not exist yet; pass a VOC2012 copy to build it from "
                         "(make data-voc-mini DATA=/path/to/VOCdevkit; make data-voc fetches VOC2012)")
    folder = voc_mini.build(args.voc or Path(), args.out)
    print(f"voc-mini ready at {folder}: {len(voc_mini.read_manifest())} files, every SHA-256 matches")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from colorgan.performance.bench import run_bench
    from colorgan.performance.bench_report import format_markdown, write_report

    cfg = config_from_args(BenchConfig, args)
    record = run_bench(cfg)
    json_path, md_path = write_report(record, cfg)
    print(format_markdown(record))
    print(f"wrote {json_path} and {md_path}")
    return 0


def cmd_mutation(args: argparse.Namespace) -> int:
    from colorgan.tools.mutation import GOAL, read_results, run_mutation, write_report

    if args.report_only:
        summary = write_report(args.out, read_results("mutants"), None, "mutants", ".")
    else:
        summary = run_mutation(args.out, args.mutants, args.jobs, args.resume)
    for module, m in summary["modules"].items():
        print(f"{module}: {m['kill rate']:.1%} killed ({m['killed']}/{m['checked']} checked of {m['mutants']}), "
              f"{m['survived']} survived")
    print(f"wrote {args.out}/report.md")
    return 0 if all(m["kill rate"] >= GOAL for m in summary["modules"].values()) else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from colorgan.common.formatting import table_markdown
    from colorgan.report.rerun_comparison import compare_per_image, read_per_image

    table = compare_per_image(read_per_image(args.first), read_per_image(args.second))
    # 4 significant digits: enough to tell rounding (1e-6) from a real shift
    text = table_markdown(table.astype(object).map(lambda v: f"{v:.4g}" if isinstance(v, float) else v))
    print(f"{args.second} against {args.first}:\n{text}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


def cmd_gpu_check(args: argparse.Namespace) -> int:
    from colorgan.performance.gpu_check import EXIT_CODES, run_gpu_check
    from colorgan.performance.gpu_check_report import format_markdown, report_paths

    cfg = config_from_args(GpuCheckConfig, args)
    record = run_gpu_check(cfg, methods())  # writes the record after every section
    json_path, md_path = report_paths(record, cfg)
    print(format_markdown(record))
    print(f"wrote {json_path} and {md_path}: {record['status']}")
    return EXIT_CODES[record["status"]]


COMMANDS = {"compare": cmd_compare, "gpu-check": cmd_gpu_check, "mutation": cmd_mutation, "train": cmd_train, "evaluate": cmd_evaluate, "score": cmd_score, "colorize": cmd_colorize, "reproduce": cmd_reproduce, "bench": cmd_bench,
            "ablations": cmd_reproduce,
            "data-voc": cmd_data_voc, "data-voc-mini": cmd_data_voc_mini}
