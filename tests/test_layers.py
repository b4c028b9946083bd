"""The layers of docs/architecture.md hold: no module imports one of a higher layer (besides the exceptions named).

A ratchet: a new upward import fails here; an exception that is removed from the code must be removed from
KNOWN_EXCEPTIONS too (so the list can only shrink).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# lowest first; "baselines" stands for every module of baselines/ (they are models and training steps)
LAYERS = [
    ("foundation", {"runtime", "params", "config", "published", "formatting"}),
    ("the paper's method", {"color", "data", "models", "losses", "step", "train", "checkpoints", "run_files",
                            "validation", "distributed", "source_hash", "run_store", "baselines"}),
    ("evaluation", {"metrics", "feature_nets", "testset", "evaluate", "score", "inference"}),
    ("experiments", {"study", "ablation", "verdicts", "executor", "executor_config"}),
    ("report", {"paper_comparison", "table1", "figures", "run_pages", "front_page", "summary"}),
    ("pipeline", {"profiles", "plan", "progress", "book_build", "pipeline"}),
    ("performance", {"bench", "bench_config", "bench_report", "devices", "timing", "gpu_check", "gpu_check_config",
                     "bench_check", "ddp_check", "gpu_check_report", "deadline"}),
    ("tools", {"mutation", "voc_mini"}),
    ("command line", {"cli", "__main__"}),
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}
# (importer, imported): upward imports that exist today, each with why; issue 24's refactor removes them
KNOWN_EXCEPTIONS = {
    ("validation", "metrics"): "validation during training scores with the evaluation's metric code",
}


def module_name(path: Path, root: Path = REPO) -> str:
    return "baselines" if path.relative_to(root).parts[0] == "baselines" else path.stem


def project_imports(path: Path) -> set[str]:
    """The colorgan modules (and 'baselines') that ``path`` imports anywhere, function bodies included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "colorgan":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("colorgan."):
                found.add(node.module.split(".")[1])
            elif node.module.split(".")[0] == "baselines":
                found.add("baselines")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("colorgan."):
                    found.add(alias.name.split(".")[1])
                elif alias.name.split(".")[0] == "baselines":
                    found.add("baselines")
    return found


def sources() -> list[Path]:
    return sorted([*(REPO / "colorgan").glob("*.py"), *(REPO / "baselines").rglob("*.py")])


def upward_imports(paths: list[Path], root: Path = REPO) -> set[tuple[str, str]]:
    pairs = set()
    for path in paths:
        me = module_name(path, root)
        for other in project_imports(path):
            if other in RANK and RANK[other] > RANK[me]:
                pairs.add((me, other))
    return pairs


def test_every_module_has_a_layer():
    unplaced = sorted({module_name(p) for p in sources()} - set(RANK) - {"__init__"})
    assert not unplaced, f"place these modules in a layer (tests/test_layers.py and docs/architecture.md): {unplaced}"


def test_no_module_imports_a_higher_layer():
    found = upward_imports(sources())
    new = {f"{a} ({LAYERS[RANK[a]][0]}) imports {b} ({LAYERS[RANK[b]][0]})"
           for a, b in found - set(KNOWN_EXCEPTIONS)}
    assert not new, f"a lower layer imports a higher one: {sorted(new)}"
    gone = set(KNOWN_EXCEPTIONS) - found
    assert not gone, f"no longer imported: remove {sorted(gone)} from KNOWN_EXCEPTIONS"


def test_the_check_sees_an_upward_import(tmp_path):
    """The check itself: a metric that imports a figure module, even inside a function, is caught."""
    fake = REPO / "colorgan" / "metrics.py"
    text = fake.read_text() + "\n\ndef _late():\n    from colorgan import figures\n"
    copy = tmp_path / "colorgan" / "metrics.py"
    copy.parent.mkdir()
    copy.write_text(text)
    assert upward_imports([copy], tmp_path) == {("metrics", "figures")}
    assert upward_imports([fake]) == set()


@pytest.mark.parametrize("layer", [name for name, _ in LAYERS])
def test_the_architecture_page_names_every_layer(layer):
    assert f"| {layer} |" in (REPO / "docs" / "architecture.md").read_text()
