"""Every command in the ```bash blocks of the README and docs/, typed as written, gets past what can be checked
cheaply.

`make` commands run as `make -n` (the target exists, its arguments pass the Makefile's own checks)
and, for the pipeline targets, through ``plan.plan``: every stage's parameters are validated, as
the real command does before any work. `colorgan` commands are parsed and their config built (the
same validation as the real command; nothing trains). Placeholder paths (/path/to/VOCdevkit) point
at a fake VOC2012 folder, and data/voc-mini at a folder standing for `make data-voc-mini`'s result.
A README command of a kind this file does not know fails the test, so new commands get checked too.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from colorgan import cli
from colorgan.performance.bench_config import BenchConfig
from colorgan.reproduce import plan

REPO = Path(__file__).resolve().parents[1]


# the README and the pages it sends readers to
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """The shell commands of the ```bash blocks of README.md and docs/*.md: continuation lines joined,
    comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", "\n".join(p.read_text() for p in PAGES), re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = re.sub(r"(^|\s+)#\s.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A working folder as a user has it: data/voc-mini built, a VOC2012 copy, runs/mine trained."""
    root = tmp_path_factory.mktemp("clone")
    for split in ("train", "test"):
        (root / "data" / "voc-mini" / split).mkdir(parents=True)
    images = root / "VOCdevkit" / "VOC2012" / "JPEGImages"
    images.mkdir(parents=True)
    for i in range(17125):  # the paper profile checks that all of VOC2012 is there (names only)
        (images / f"{i:06d}.jpg").touch()
    # runs/mine as the README's first `train --run-dir runs/mine` leaves it (its config.json)
    first = next(shlex.split(c) for c in readme_commands() if "train" in c and "runs/mine" in c and "--resume" not in c)
    args = cli.build_parser().parse_args(first[1:])
    cfg = cli.config_from_args(cli.METHODS["colorgan"][0], args)
    (root / cfg.run_dir).mkdir(parents=True)
    (root / cfg.run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
    return root


def substitute(text: str, clone: Path) -> str:
    return text.replace("/path/to/VOCdevkit", str(clone / "VOCdevkit"))


def make_variables(words: list[str]) -> tuple[str, dict[str, str]]:
    target = next((w for w in words[1:] if "=" not in w), "")
    return target, dict(w.split("=", 1) for w in words[1:] if "=" in w)


def check_make(words: list[str], clone: Path, tmp_path: Path) -> None:
    completed = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    target, variables = make_variables(words)
    if target in ("reproduce", "book", "ablations"):
        profile = variables.get("PROFILE", "smoke")
        kind = "ablations" if target == "ablations" else "reproduce"
        p = plan.plan(profile, cli.METHODS, variables.get("DATA", ""),
                      plan.parse_overrides(variables.get("PARAMS", "")), tmp_path / "results", kind=kind)
        assert p.params
    elif target == "bench" and "BENCH_ARGS" in variables:
        args = cli.build_parser().parse_args(["bench", *shlex.split(variables["BENCH_ARGS"])])
        cli.config_from_args(BenchConfig, args)


def check_colorgan(words: list[str], clone: Path) -> None:
    argv = [w for w in words[1:] if w != "..."]  # '...' marks "and the other flags" in the README
    method = argv[argv.index("--method") + 1] if "--method" in argv else "colorgan"
    args = cli.build_parser(method).parse_args(argv)
    config_cls = cli.METHODS[method][0]
    if args.command == "train" and args.resume:
        cfg = cli.resumed_config(config_cls, args)
        assert cfg.resume and cfg.image_size == json.loads(Path(cfg.run_dir, "config.json").read_text())["image_size"]
    elif args.command == "train":
        cli.config_from_args(config_cls, args)
    elif args.command in ("evaluate", "colorize"):
        for run_dir in getattr(args, "run_dirs", None) or [args.run]:
            assert cli.run_method(run_dir) == "colorgan"
    elif args.command == "score":  # the README's folders are the reader's own: the flags must parse and make sense
        assert args.pred_dir != args.gt_dir and args.protocol in ("resize", "center-crop")
    elif args.command == "compare":  # two results of the reader's: they must parse and be two different ones
        assert args.first != args.second
    else:
        raise AssertionError(f"no check for `colorgan {args.command}`")


COMMANDS = readme_commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 20 and "make data-voc-mini DATA=/path/to/VOCdevkit" in COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, clone, tmp_path, monkeypatch):
    monkeypatch.chdir(clone)  # relative paths (data/voc-mini, runs/mine) as in the user's clone
    words = shlex.split(substitute(command, clone))
    if words[0] == "make":
        check_make(words, clone, tmp_path)
    elif words[0] in (".venv/bin/colorgan", "colorgan"):
        check_colorgan(words, clone)
    elif words[0] == "torchrun":
        check_colorgan(["colorgan", *words[words.index("colorgan") + 1:]], clone)
    elif words[0] == "conda":
        environment = yaml.safe_load((REPO / "environment.yml").read_text())
        assert words[1:4] == ["env", "create", "-f"] and (REPO / words[4]).is_file()
        assert words[words.index("activate") + 1] == environment["name"]  # creating an env is not cheap: not run
    elif words[0] in ("mkdir", "curl"):  # fetching weights on a machine with internet access: not run here
        import torch

        if words[0] == "mkdir":  # the folder the README names is torch's default hub cache, which the loaders read
            monkeypatch.delenv("TORCH_HOME", raising=False)
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
            assert Path(words[2]).expanduser() == Path(torch.hub.get_dir()) / "checkpoints"
        else:
            assert words[1] == "-LO"
    else:
        raise AssertionError(f"the README command {command!r} is of a kind this test does not check; add a check")
