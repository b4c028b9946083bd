"""How fast the command line answers: `colorgan --help`, `colorgan <cmd> --help` and a mistyped flag.

Each command runs ``--runs`` times (default 5) in a fresh interpreter, as a user's shell starts it; prints
the median, min and max wall time per command and the machine's load average before and after (a loaded
machine's numbers say little). ``--repo PATH`` times another checkout (e.g. an older commit in a
``git worktree``) for a before/after comparison. Run by ``make bench-cli``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (["--help"], ["train", "--help"], ["score", "--help"], ["colorize", "--help"], ["reproduce", "--help"],
            ["train", "--no-such-flag"])


def time_command(repo: Path, args: list[str], runs: int) -> list[float]:
    """Wall seconds of ``python -m colorgan ARGS`` in ``repo``, ``runs`` times (exit 0 for help, 2 for a bad flag)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run([sys.executable, "-m", "colorgan", *args], cwd=repo, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - started)
        if completed.returncode not in (0, 2):
            raise SystemExit(f"`colorgan {' '.join(args)}` exited with {completed.returncode} in {repo}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                        help="checkout to time (default: this one)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    print(f"colorgan CLI start-up, {args.repo.resolve()}: {args.runs} runs each, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'command':<34} {'median':>8} {'min':>8} {'max':>8}")
    for command in COMMANDS:
        seconds = time_command(args.repo, command, args.runs)
        print(f"{'colorgan ' + ' '.join(command):<34} {statistics.median(seconds):7.2f}s {min(seconds):7.2f}s "
              f"{max(seconds):7.2f}s")
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min): before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
