"""The rendered book of a results folder: its executed notebooks behind a generated front page, as static HTML
(Jupyter Book, offline).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from colorgan.experiments.ablation import ABLATION_DIR
from colorgan.method.config import ColorGANConfig
from colorgan.reproduce.plan import BOOK_SOURCES, Plan

log = logging.getLogger(__name__)


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
    from colorgan.common.published import paper_table1
    from colorgan.report.front_page import front_page
    from colorgan.report.paper_comparison import comparability_note

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
        headline=front_page(p.out_dir) or "*No results in this folder yet.*", figures="\n".join(figures))


# Figures the front page shows when the profile's results folder has them: file -> caption.
FRONT_FIGURES = {
    "learning_curves.png": "Every run scored on its validation images during training (seeds as thin lines, "
                           "grayscale dashed): where the curves flatten, the budget was enough",
    "metric_distributions.png": "Per-image PSNR and SSIM of every method (each dot one test image)",
    "ablation_deltas.png": "The ablation: each variant's difference to the full model, with its 95% interval",
}
