"""The layers of docs/architecture.md hold: no module imports one of a higher layer.

A layer is a folder of colorgan/ (baselines/ sits with the paper's method: they are models and training steps);
the command line sits on top. A new upward import fails here, even one inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# lowest first: (folder of colorgan/, what it holds)
LAYERS = [
    ("common", "seeding and devices, data-parallel ranks, the config machinery, the papers' values, formatting"),
    ("method", "the paper's method: colour, data, networks, loss terms, the step, its config (and baselines/)"),
    ("measures", "metrics, their feature networks, test sets from folders"),
    ("training", "the loop, checkpoints, validation during training, the run store, the code hash"),
    ("evaluation", "scoring runs and other tools' outputs, colorizing photos"),
    ("experiments", "the study, the ablation, the verdict engine and its claims, executors"),
    ("report", "Table 1, figures, run pages, the paper comparison, the summary"),
    ("reproduce", "profiles, the plan, running stages, progress, the book build"),
    ("performance", "device facts, timing, the bench, the GPU check"),
    ("tools", "mutation testing, voc-mini"),
    ("cli", "the command line: colorgan/cli.py, colorgan/__main__.py"),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def layer_of(path: Path, root: Path = REPO) -> str:
    """The layer of a source file: its folder under colorgan/, 'method' for baselines/, 'cli' for the top files."""
    parts = path.relative_to(root).parts
    if parts[0] == "baselines":
        return "method"
    return parts[1] if len(parts) > 2 else "cli"


def imported_layers(path: Path) -> set[str]:
    """The layers ``path`` imports anywhere (function bodies included): colorgan folders, 'method' for baselines."""
    found = set()

    def add(module: str) -> None:
        parts = module.split(".")
        if parts[0] == "baselines":
            found.add("method")
        elif parts[0] == "colorgan" and len(parts) > 1:
            found.add(parts[1] if parts[1] in RANK else "cli")

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "colorgan":
                for alias in node.names:
                    add(f"colorgan.{alias.name}")
            else:
                add(node.module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
    return found


def sources(root: Path = REPO) -> list[Path]:
    return sorted([*(root / "colorgan").rglob("*.py"), *(root / "baselines").rglob("*.py")])


def upward_imports(paths: list[Path], root: Path = REPO) -> set[tuple[str, str]]:
    """(file, layer) pairs where a file imports a layer above its own."""
    pairs = set()
    for path in paths:
        mine = layer_of(path, root)
        for other in imported_layers(path):
            if RANK[other] > RANK[mine]:
                pairs.add((path.relative_to(root).as_posix(), other))
    return pairs


def test_every_module_is_in_a_layer_folder():
    top = sorted(p.name for p in (REPO / "colorgan").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "cli.py"], f"put these in a layer folder: {top}"
    folders = sorted(p.name for p in (REPO / "colorgan").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert folders == sorted(name for name, _ in LAYERS if name != "cli")


def test_no_module_imports_a_higher_layer():
    found = upward_imports(sources())
    assert not found, f"a lower layer imports a higher one: {sorted(found)}"


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself: a metric that imports the report, even inside a function, is caught."""
    real = REPO / "colorgan" / "measures" / "metrics.py"
    copy = tmp_path / "colorgan" / "measures" / "metrics.py"
    copy.parent.mkdir(parents=True)
    copy.write_text(real.read_text() + "\n\ndef _late():\n    from colorgan.report import figures\n")
    assert upward_imports([copy], tmp_path) == {("colorgan/measures/metrics.py", "report")}
    assert upward_imports([real]) == set()


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_the_architecture_page_names_every_layer(layer):
    assert f"| `{layer}` |" in (REPO / "docs" / "architecture.md").read_text()
