"""The one training loop (``fit``) that every method plugs into, and the entry points around it.

A method supplies a *step* (``TrainStep``): its modules and optimisers, a seeded ``torch.Generator``
for its own randomness (noise, penalties), one update per call, and ``colorize`` for evaluation.
``fit`` owns everything else: data order, devices, logging, progress, checkpoints and resume, and,
under ``torchrun``, the data-parallel ranks (``colorgan.common.distributed``). What a checkpoint holds and how
it is written and read is ``colorgan.training.checkpoints``; the run folder's other files are ``colorgan.training.run_files``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from torch import nn

from colorgan.common import distributed, runtime
from colorgan.training.checkpoints import (CheckpointDir, check_free_space, checkpoint_path, checkpoint_state,
                                  estimate_checkpoint_bytes, load_checkpoint, load_weights, restore, save_best,
                                  saves_at_most)
from colorgan.method.config import RunConfig
from colorgan.method.data import ImageSet, batches, carve_validation, load_split, prefetch, split_record, steps_per_epoch
from colorgan.training.run_files import CODE_RECORD, prepare_run_dir, resume_validation, truncate_metrics, write_progress
# code_hash here is the training code's hash: reports and verdicts can change without retraining
from colorgan.training.source_hash import training_code_hash as code_hash
from colorgan.training.validation import BEST_CHECKPOINT, Validator

log = logging.getLogger(__name__)

# Fields that do not change what a finished run computed (so it can be reused).
REUSE_IGNORES = {"resume", "progress", "device", "num_bootstrap", "max_minutes", "log_every", "checkpoint_every",
                 "keep_checkpoints"}


class TrainStep(Protocol):
    """What a method gives ``fit``. ``__call__`` does one full update and returns its loss terms.

    Optional: ``describe() -> dict`` (recorded in provenance.json) and ``distribute(ctx)``, which
    makes the step one data-parallel rank (see ``ColorGANStep.distribute``); without it, a step
    trains in one process only.
    """

    rng: torch.Generator  # the step's own randomness (noise z, GP mixing); saved in checkpoints

    def modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """batch: (B, 3, H, W) uint8 RGB on the training device -> {term name: detached scalar}."""
        ...

    def colorize(self, L: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L: (B, 1, H, W) in [-1, 1] -> rgb (B, 3, H, W) in [0, 1]; ``generator`` draws any noise."""
        ...


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names the step and the term."""


@dataclass
class FitResult:
    run_dir: Path
    step: int  # optimiser steps completed
    total_steps: int
    wall_seconds: float
    stopped_early: bool  # max_minutes ran out before total_steps


def total_steps(cfg: RunConfig, num_images: int) -> int:
    """cfg.num_steps, or cfg.num_epochs full passes over ``num_images``."""
    return cfg.num_steps or cfg.num_epochs * steps_per_epoch(num_images, cfg.batch_size)


def fit(cfg: RunConfig, step: TrainStep, train: ImageSet, device: torch.device,
        extra_provenance: dict[str, Any] | None = None,
        ctx: distributed.Context = distributed.SINGLE, val_images: ImageSet | None = None) -> FitResult:
    """Train ``step`` on ``train`` for cfg's budget, writing everything into ``cfg.run_dir``.

    The run folder gets ``config.json``, ``provenance.json``, ``metrics.jsonl`` (one line per
    ``log_every`` steps) and ``checkpoints/step_XXXXXXXX.pt``. With ``cfg.resume`` it continues from
    the newest readable checkpoint, and the result equals an uninterrupted run (data order, flips,
    noise and RNG states are all restored).

    With ``ctx`` from torchrun, every rank trains on its slice of each global batch of
    ``cfg.batch_size``; rank 0 alone writes the run folder while the others wait at barriers, and
    logged values are averaged over the ranks.

    With ``val_images`` (carved from the training split by ``train``), the run is scored on them every
    ``cfg.val_every`` steps and at the end (``val.jsonl``, best weights in ``best_val.pt``); a checkpoint is
    written at every validation, so resuming never repeats or skips one.
    """
    run_dir = Path(cfg.run_dir)
    checkpoints = CheckpointDir(run_dir / "checkpoints", cfg.keep_checkpoints)
    num_steps = total_steps(cfg, len(train))
    if ctx.is_main:
        prepare_run_dir(run_dir, cfg, checkpoints)
        saves = saves_at_most(num_steps, cfg.checkpoint_every, cfg.val_every if val_images is not None else None)
        check_free_space(run_dir, estimate_checkpoint_bytes(step),
                         min(saves, cfg.keep_checkpoints + 1 - len(checkpoints.paths())))
        (run_dir / "finished.json").unlink(missing_ok=True)
    distributed.barrier(ctx)
    start_step, previous_seconds = 0, 0.0
    if cfg.resume and checkpoints.paths():
        start_step, previous_seconds = restore(checkpoints, step, cfg)
        log.info("resumed %s at step %d", run_dir, start_step)
    elif cfg.resume and ctx.is_main:  # e.g. a mistyped run_dir, or a run killed before its first checkpoint
        log.warning("resume=True, but %s holds no checkpoint: training starts from step 0",
                    run_dir / "checkpoints")
    validator = None
    if val_images is not None and ctx.is_main:
        validator = Validator(val_images, run_dir, device, cfg.seed, cfg.batch_size)
        resume_validation(validator, run_dir, start_step)
    metrics_path = run_dir / "metrics.jsonl"
    if ctx.is_main:
        write_progress(run_dir, start_step, num_steps, start_step)
        runtime.write_json(run_dir / "config.json", cfg.to_dict())
        runtime.write_json(run_dir / "provenance.json", runtime.provenance(
            cfg.seed, device, **(extra_provenance or {}), world_size=ctx.world_size))
        truncate_metrics(metrics_path, start_step)
    for module in step.modules().values():
        module.to(device).train()
    distribute = getattr(step, "distribute", None)
    if ctx.enabled and callable(distribute):
        distribute(ctx)
    elif ctx.world_size > 1:  # one process under torchrun trains as without it
        raise ValueError(f"{cfg.method}: its training step has no distribute(), so it trains in one "
                         "process only; run it without torchrun")
    pin = device.type == "cuda"
    data = batches(train.images, cfg.batch_size, cfg.seed, start_step, cfg.flip, rank=ctx.rank,
                   world_size=ctx.world_size, pin_memory=pin)
    if pin:  # gather and pin the next batches while this thread launches GPU work
        data = prefetch(data)

    from tqdm.auto import tqdm

    bar = tqdm(total=num_steps, initial=start_step, disable=not (cfg.progress and ctx.is_main),
               desc=f"train {cfg.method}", dynamic_ncols=True)
    started = tick = time.monotonic()
    tick_step = start_step
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    current, stopped_early = start_step, False
    unchecked: list[tuple[int, dict[str, torch.Tensor]]] = []  # (step, terms) since the last check
    with contextlib.closing(data), open(metrics_path, "a") if ctx.is_main else contextlib.nullcontext() as metrics:
        while current < num_steps:
            batch = next(data).to(device, non_blocking=True)
            terms = step(batch)
            current += 1
            unchecked.append((current, terms))
            bar.update(1)
            at_validation = validator is not None and (current == num_steps or (
                cfg.val_every > 0 and current % cfg.val_every == 0))
            at_checkpoint = current % cfg.checkpoint_every == 0 or current == num_steps or at_validation
            out_of_time = time.monotonic() > deadline
            if cfg.max_minutes:
                out_of_time = distributed.agree(out_of_time, ctx)  # every rank stops at the same step
            if current % cfg.log_every == 0 or at_checkpoint or out_of_time:
                # Every step's terms are checked, here: one device sync per log line rather than per
                # step, and always before a checkpoint is written, so none ever holds NaN weights.
                if ctx.enabled:  # the mean over ranks: what one process with the global batch logs; and a
                    # non-finite term on any rank (whose gradients reached every rank) stops all of them here
                    unchecked = [(number, distributed.mean_over_ranks(t, ctx)) for number, t in unchecked]
                values = check_steps(unchecked, checkpoints)
                unchecked.clear()
                now = time.monotonic()
                line = {"step": current, **values, "sec_per_step": (now - tick) / (current - tick_step)}
                tick, tick_step = now, current
                if metrics is not None:
                    metrics.write(json.dumps(line) + "\n")
                    metrics.flush()
                    write_progress(run_dir, current, num_steps, start_step, values,
                                   cfg.batch_size / line["sec_per_step"], (num_steps - current) * line["sec_per_step"])
                bar.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k in ("g_total", "d_loss", "loss")})
            if at_checkpoint or out_of_time:
                if ctx.is_main:
                    wall = previous_seconds + time.monotonic() - started
                    if at_validation:  # validated weights are saved before the checkpoint that resumes after them
                        validator(step, current, current * cfg.batch_size, lambda path: save_best(
                            path, checkpoint_state(current, step, cfg, wall)))
                    checkpoints.save(current, checkpoint_state(current, step, cfg, wall))
                distributed.barrier(ctx)
            if out_of_time and current < num_steps:
                stopped_early = True
                log.info("max_minutes=%s reached at step %d of %d; checkpoint saved", cfg.max_minutes, current,
                         num_steps)
                break
    bar.close()
    result = FitResult(run_dir, current, num_steps, previous_seconds + time.monotonic() - started, stopped_early)
    if not stopped_early and ctx.is_main:
        runtime.write_json(run_dir / "finished.json", {"step": current, "total_steps": num_steps,
                                                       "wall_seconds": result.wall_seconds})
    return result


def check_finite(terms: dict[str, torch.Tensor], step_number: int) -> dict[str, float]:
    """Loss terms as floats; raises ``NonFiniteLossError`` naming the step and term if any is NaN/inf."""
    values = {name: float(value) for name, value in terms.items()}
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise NonFiniteLossError(f"step {step_number}: loss term(s) {bad} became non-finite "
                                 f"({ {n: values[n] for n in bad} }); the last good checkpoint is kept")
    return values


def check_steps(unchecked: list[tuple[int, dict[str, torch.Tensor]]], checkpoints: "CheckpointDir") -> dict[str, float]:
    """``check_finite`` on each (step, terms) in order; the error also names the checkpoint to go back to.

    Returns: the last step's terms as floats.
    """
    try:
        return [check_finite(terms, number) for number, terms in unchecked][-1]
    except NonFiniteLossError as err:
        kept = checkpoints.paths()
        where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint had been written yet"
        raise NonFiniteLossError(f"{err}. Training stopped; {where}") from None


# ------------------------------------------------------------------------------------ entry points

StepFactory = Callable[[RunConfig, torch.device], TrainStep]


def train(cfg: RunConfig, build_step: StepFactory, cache_dir: Path = Path(".cache/images"),
          ctx: distributed.Context = distributed.SINGLE) -> FitResult:
    """Seed, pick the device, load the split (saved as ``split.json``), build the step and ``fit``.

    ``ctx`` (from torchrun's environment, see ``distributed.from_environment``) makes this process
    one of several data-parallel ranks.
    """
    runtime.seed_everything(cfg.seed)
    device = distributed.rank_device(ctx, runtime.select_device(cfg.device))
    run_dir = Path(cfg.run_dir)
    with distributed.process_group(ctx, device):
        if ctx.is_main:  # before the data: reading and caching a dataset can take long, then fail on the run folder
            prepare_run_dir(run_dir, cfg, CheckpointDir(run_dir / "checkpoints"))
            # which code trains this run (train_or_reuse reuses or resumes only a run made by the same code)
            runtime.write_json(run_dir / CODE_RECORD, {"code_hash": code_hash(), "git_commit": runtime.git_commit()})
        with distributed.main_first(ctx):  # rank 0 builds the image cache, the others then read it
            train_set, test_set, data_info = load_split(cfg, cache_dir, progress=cfg.progress)
        val_set = None
        if cfg.num_val_images:
            train_set, val_set = carve_validation(train_set, cfg.num_val_images)
            data_info = {**data_info, "num_train": len(train_set), "num_val": len(val_set)}
        if ctx.is_main:
            record = split_record(train_set, test_set, data_info)
            runtime.write_json(run_dir / "split.json", {**record, "val": val_set.names} if val_set else record)
        step = build_step(cfg, device)
        extra = {"data": {k: v for k, v in data_info.items() if k != "skipped"},
                 "num_skipped_files": len(data_info["skipped"]), **step_provenance(step)}
        return fit(cfg, step, train_set, device, extra, ctx, val_set)


def run_hash(cfg: RunConfig) -> str:
    """8 hex digits naming a run folder: what the run computes (bookkeeping fields excluded) and the code.

    With the training code's content hash in it (``source_hash.training_code_hash``), an edit that can
    change what a run computes trains into a new folder instead of serving numbers that the old code made.
    """
    relevant = {k: v for k, v in cfg.to_dict().items() if k not in REUSE_IGNORES | {"run_dir"}}
    relevant["code"] = code_hash()
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:8]


def train_or_reuse(cfg: RunConfig, build_step: StepFactory, cache_dir: Path = Path(".cache/images")) -> FitResult:
    """``train``, unless ``cfg.run_dir`` already holds this config's finished run made by this code.

    A finished run (``finished.json`` beside the same config) is reused as is; a partial one (crash,
    max_minutes) is resumed; anything else starts fresh. This is what makes pipeline stages cheap
    to re-run and safe to interrupt. ``code.json`` records the code's content hash (``source_hash``):
    a run folder made by other code (or by unrecorded code) is neither reused nor resumed, because its
    numbers would not be this code's; the error says so (the pipeline's run folders are named by the
    code hash, so it never meets one).
    """
    run_dir = Path(cfg.run_dir)
    finished, config_path, code_path = run_dir / "finished.json", run_dir / "config.json", run_dir / CODE_RECORD
    current_code = code_hash()
    made_by = json.loads(code_path.read_text()).get("code_hash") if code_path.is_file() else None
    has_run = finished.is_file() or CheckpointDir(run_dir / "checkpoints").paths()
    if has_run and made_by != current_code:
        raise ValueError(f"run_dir: {run_dir} holds a run made by "
                         + (f"other code (code hash {made_by}, now {current_code})" if made_by else
                            f"code of unrecorded version (no {CODE_RECORD})")
                         + "; its numbers are not this code's, so it is neither reused nor resumed. Choose "
                         "another run_dir, or delete that one to train it again")
    if finished.is_file() and config_path.is_file():
        saved, current = json.loads(config_path.read_text()), cfg.to_dict()
        if all(saved.get(k) == v for k, v in current.items() if k not in REUSE_IGNORES):
            record = json.loads(finished.read_text())
            log.info("reusing finished run %s (step %d, code %s)", run_dir, record["step"], current_code)
            return FitResult(run_dir, record["step"], record["total_steps"], record["wall_seconds"], False)
    resume = bool(CheckpointDir(run_dir / "checkpoints").paths())
    return train(cfg.replace(resume=resume), build_step, cache_dir)


def step_provenance(step: TrainStep) -> dict[str, Any]:
    """What a step wants recorded beside its numbers (e.g. which VGG weights it used)."""
    describe = getattr(step, "describe", None)
    return describe() if callable(describe) else {}


def load_trained(run_dir: Path | str, config_cls: type[RunConfig], build_step: StepFactory,
                 device: torch.device, inference_only: bool = False, checkpoint: str = "last"
                 ) -> tuple[RunConfig, TrainStep, int]:
    """Rebuild a run's step from its ``config.json`` and a checkpoint: (cfg, step, checkpoint step).

    ``checkpoint``: 'last' (the newest), 'best_val' (the weights that scored the best validation PSNR), or a
    step number ('400': ``checkpoints/step_00000400.pt``, one of the kept checkpoints).

    ``inference_only``: the run is only used to colorize, which needs neither its training data nor
    its loss network's weights, so those paths (perhaps on the machine that trained it) are not required.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.json); train one with `colorgan train`")
    params = json.loads(config_path.read_text())
    method = params.pop("method", None)
    if method != config_cls.method:
        raise ValueError(f"{run_dir} holds a {method!r} run, not {config_cls.method!r}")
    if inference_only:
        unused = {"data": "samples", "data_root": "", "vgg_weights": "random"}
        params.update({k: v for k, v in unused.items() if k in params})
    cfg = config_cls.from_params({**params, "resume": False, "progress": False})
    step = build_step(cfg, device)
    if checkpoint == "best_val":
        best = run_dir / BEST_CHECKPOINT
        if not best.is_file():
            raise FileNotFoundError(f"{best} does not exist: the run trained without validation (num_val_images=0) "
                                    "or before its first validation; use checkpoint='last'")
        state = load_checkpoint(best)
    elif checkpoint == "last":
        state = CheckpointDir(run_dir / "checkpoints").load_latest()
    elif checkpoint.isdigit():
        path = checkpoint_path(run_dir, checkpoint)
        if not path.is_file():
            kept = [int(p.stem.removeprefix("step_")) for p in CheckpointDir(run_dir / "checkpoints").paths()]
            raise FileNotFoundError(f"checkpoint: {run_dir} has no checkpoint of step {int(checkpoint)}; it keeps "
                                    f"steps {kept} (keep_checkpoints), or use 'last' or 'best_val'")
        state = load_checkpoint(path)
    else:
        raise ValueError(f"checkpoint: {checkpoint!r} is not allowed; choose 'last', 'best_val' or a step number")
    load_weights(step, state)
    for module in step.modules().values():
        module.to(device).eval()
    return cfg, step, int(state["step"])
