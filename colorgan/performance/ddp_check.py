"""The GPU check's DDP section: ``torchrun`` + ``--resume`` against one uninterrupted process, judged by how far
the weights ended apart relative to how far training moved them (a check that a broken run fails)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from colorgan.method.config import ColorGANConfig, RunConfig
from colorgan.method.step import ColorGANStep
from colorgan.performance import deadline
from colorgan.performance.gpu_check_config import GpuCheckConfig
from colorgan.training.checkpoints import CheckpointDir, load_checkpoint
from colorgan.training.run_files import PROGRESS_FILE
from colorgan.training.train import StepFactory, train

REPO_ROOT = Path(__file__).resolve().parents[2]
# more than the run writes (at half, 2·half and the end): judge_ddp reads the one at half after the resume.
# A count, not checkpoints.KEEP_ALL: training checks there is disk space for this many checkpoints.
KEEP_EVERY_CHECKPOINT = 99


def check_ddp(cfg: GpuCheckConfig, device: torch.device, work_dir: Path, until: float,
              model: dict[str, Any]) -> dict[str, Any]:
    """torchrun with one process (DDP; NCCL and SyncBatchNorm on CUDA): half the steps, then ``--resume`` to the
    end; judged against one process's uninterrupted run of the same config by ``judge_ddp``. The torchrun
    calls get the time left to the section's deadline ``until`` (epoch s); ``model``: ColorGAN's size fields."""
    half = max(cfg.num_steps // 2, 1)
    params = cfg.run_params(model, checkpoint_every=half, keep_checkpoints=KEEP_EVERY_CHECKPOINT)
    run_dir = work_dir / "ddp"
    env, rank_device = torchrun_env(device, os.environ)
    logs = []
    for steps, resume in ((half, False), (cfg.num_steps, True)):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
                   "colorgan", "train", "--params", json.dumps({**params, "num_steps": steps, "resume": resume,
                                                                 "device": rank_device, "run_dir": str(run_dir)})]
        code, output = run_until(command, env, until)
        logs.append(output)
        if code != 0:
            return {"ok": False, "error": f"torchrun exited {code}" + (" (stopped at the deadline)" if code is None
                                                                         else ""), "log": output}
    references = []
    for rerun in (0, 1):  # twice: the second measures how far two identical runs drift apart here (the floor)
        initial: dict[str, torch.Tensor] = {}
        reference_dir = work_dir / f"ddp-reference-{rerun}"
        train(ColorGANConfig.from_params({**params, "run_dir": str(reference_dir)}),
              recording_initial_weights(ColorGANStep, initial), work_dir / "cache")
        references.append((reference_dir, initial))
    floor = relative_distance(final_weights(references[1][0]), final_weights(references[0][0]), references[0][1],
                              trained_keys(references[0][1]))
    tolerance, unjudgeable = tolerance_over_floor(cfg.ddp_tolerance, floor)
    result = judge_ddp(run_dir, references[0][0], references[0][1], half, cfg.num_steps, tolerance,
                       resume_log=logs[-1])
    if unjudgeable:
        result.update(ok=False, failures=[*result["failures"], unjudgeable])
    return {**result, "rerun_distance": floor, "tolerance_set": cfg.ddp_tolerance,
            "backend": "nccl" if device.type == "cuda" else "gloo",
            "rank_device": rank_device, "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
            "world_size": json.loads((run_dir / "provenance.json").read_text()).get("world_size"),
            "log": logs[-1][-1500:]}


# Broken runs measured 0.41 and more (see GpuCheckConfig.ddp_tolerance); a bound above half of that could pass one.
JUDGEABLE_TOLERANCE = 0.2


def tolerance_over_floor(tolerance: float, floor: float) -> tuple[float, str | None]:
    """The bound to judge by: ``tolerance`` (set on the CPU, where identical runs repeat bit for bit), or twice the
    distance ``floor`` between two identical one-process runs on this device (bf16 and cuDNN's nondeterministic
    kernels), whichever is larger; and why nothing can be judged, when that exceeds ``JUDGEABLE_TOLERANCE``."""
    bound = max(tolerance, 2 * floor)
    if bound <= JUDGEABLE_TOLERANCE:
        return bound, None
    return bound, (f"two identical one-process runs ended {floor:.3g} apart on this device: above "
                   f"{JUDGEABLE_TOLERANCE / 2} nondeterminism hides a broken DDP or resume; not judged")


def torchrun_env(device: torch.device, environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(environment, device flag) for torchrun's ranks on ``device``: each rank uses cuda:LOCAL_RANK, so
    ``cuda:N`` becomes CUDA_VISIBLE_DEVICES=N (the N-th of those already visible) and device 'cuda'."""
    env = {**environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), environ.get("PYTHONPATH", "")]))}
    if device.type != "cuda":
        return env, str(device)
    if device.index is not None:
        visible = [v.strip() for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        if visible and device.index >= len(visible):
            raise ValueError(f"device: {device} is not among CUDA_VISIBLE_DEVICES={environ['CUDA_VISIBLE_DEVICES']}")
        env["CUDA_VISIBLE_DEVICES"] = visible[device.index] if visible else str(device.index)
    return env, "cuda"


def run_until(command: list[str], env: Mapping[str, str], until: float) -> tuple[int | None, str]:
    """Run ``command`` until ``until`` (epoch s): (exit code, or None when stopped at the deadline; its output's tail).

    It stays in this process's group, so stopping the section (``deadline.stop_group``) stops it too. At the
    deadline it gets SIGTERM first: torchrun then stops its ranks (which it starts in sessions of their own,
    out of reach of a group signal), and SIGKILL after ``deadline.GRACE_SECONDS``."""
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=dict(env), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=max(until - time.time(), 1.0))
        return process.returncode, output[-4000:]
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            output, _ = process.communicate(timeout=deadline.GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return None, output[-4000:]


def recording_initial_weights(factory: StepFactory, initial: dict[str, torch.Tensor]) -> StepFactory:
    """``factory`` that also copies the new step's weights into ``initial`` (w0 of ``relative_distance``)."""
    def build(run_cfg: RunConfig, device: torch.device) -> Any:
        step = factory(run_cfg, device)
        initial.update({f"{m}.{k}": v.detach().cpu().clone()
                        for m, module in step.modules().items() for k, v in module.state_dict().items()})
        return step
    return build


def checkpoint_weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's module tensors keyed '<module>.<name>' (on the CPU)."""
    state = load_checkpoint(path)
    return {f"{m}.{k}": v.cpu() for m, sd in state["modules"].items() for k, v in sd.items()}


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return checkpoint_weights(CheckpointDir(Path(run_dir) / "checkpoints").paths()[-1])


def relative_distance(got: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                      initial: Mapping[str, torch.Tensor], keys: Iterable[str] | None = None) -> float:
    """‖got - expected‖ / ‖expected - initial‖: one L2 norm over ``keys`` (default: every float tensor).

    How far apart two runs ended, in units of how far training moved the weights: 0 for the same
    training, 1 for a run that never trained. One norm over all tensors, not a per-tensor maximum:
    a bias right before a norm layer has a gradient of ~0, and Adam turns the rounding noise of such
    a gradient into full-size steps whose sign no two summation orders need agree on; and a bound on
    max |Δw| cannot fail, since a few Adam steps at lr ~1e-4 move no weight further than that.
    Compare weights apart from BatchNorm's running statistics (``trained_keys``): those move with the
    data alone, trained or not.
    """
    keys = [k for k, v in expected.items() if v.is_floating_point()] if keys is None else list(keys)
    apart = sum(((got[k].double() - expected[k].double()) ** 2).sum() for k in keys) ** 0.5
    moved = sum(((expected[k].double() - initial[k].double()) ** 2).sum() for k in keys) ** 0.5
    if not moved > 0:
        raise ValueError("relative_distance: the reference run did not move its weights; train it for some steps")
    return float(apart / moved)


def trained_keys(weights: Mapping[str, torch.Tensor]) -> list[str]:
    """The float tensors that training moves: all but BatchNorm's running statistics."""
    return [k for k, v in weights.items() if v.is_floating_point() and not k.endswith(("running_mean", "running_var"))]


def judge_ddp(run_dir: Path, reference_dir: Path, initial: Mapping[str, torch.Tensor], half: int, num_steps: int,
              tolerance: float, resume_log: str = "") -> dict[str, Any]:
    """Compare a torchrun run (``half`` steps, then resumed to ``num_steps``) with one process's uninterrupted run.

    - ddp: relative distance of the two runs' weights at step ``half`` (both uninterrupted so far);
    - resume: relative distance at the end, after the torchrun run resumed;
    - the resume itself: the step it resumed from, read back from the run (``progress.json``'s start_step,
      and the 'resumed ... at step N' log line when ``resume_log`` is given), and one log line per step.
    Returns the measured values, ``ok`` and ``failures`` (why, with the measured distances).
    """
    checkpoints = {int(p.stem.split("_")[1]): p for p in CheckpointDir(Path(run_dir) / "checkpoints").paths()}
    references = {int(p.stem.split("_")[1]): p for p in CheckpointDir(Path(reference_dir) / "checkpoints").paths()}
    progress = json.loads((Path(run_dir) / PROGRESS_FILE).read_text())
    logged = [json.loads(line)["step"] for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    found = re.findall(r"resumed \S+ at step (\d+)", resume_log)
    failures = []
    ddp_distance = resume_distance = None
    if half in checkpoints and half in references:
        ddp_distance = relative_distance(checkpoint_weights(checkpoints[half]), checkpoint_weights(references[half]),
                                         initial, trained_keys(initial))
        if not ddp_distance <= tolerance:
            failures.append(f"DDP vs one process at step {half}: relative distance {ddp_distance:.3g} > {tolerance}")
    else:
        failures.append(f"no checkpoint at step {half} in both runs (found {sorted(checkpoints)} and {sorted(references)})")
    if num_steps in checkpoints and num_steps in references:
        resume_distance = relative_distance(checkpoint_weights(checkpoints[num_steps]),
                                            checkpoint_weights(references[num_steps]), initial, trained_keys(initial))
        if not resume_distance <= tolerance:
            failures.append(f"resumed vs uninterrupted at step {num_steps}: relative distance {resume_distance:.3g} "
                            f"> {tolerance}")
    else:
        failures.append(f"the torchrun run did not reach step {num_steps} (checkpoints {sorted(checkpoints)})")
    if progress.get("start_step") != half:
        failures.append(f"the run resumed from step {progress.get('start_step')} (progress.json), not {half}")
    if resume_log and [int(n) for n in found] != [half]:
        failures.append(f"the resume log says {found or 'nothing'} about resuming, expected step {half}")
    if logged != list(range(1, num_steps + 1)):
        failures.append(f"metrics.jsonl logs steps {logged}, expected 1..{num_steps} once each")
    return {"ok": not failures, "failures": failures, "steps": max(checkpoints, default=0), "half": half,
            "resumed_from": progress.get("start_step"), "resumed_from_log": [int(n) for n in found],
            "logged_steps": len(logged), "ddp_distance": ddp_distance, "resume_distance": resume_distance,
            "tolerance": tolerance, "checkpoints": sorted(checkpoints)}
