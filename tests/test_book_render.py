"""End to end: the pipeline at toy size through real papermill, the rendered book opened in Chromium."""

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from colorgan.cli import METHODS
from colorgan.reproduce import book_build, pipeline, plan
from tests.conftest import write_images
from tests.test_book import AS_IS

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOY = ("image_size=32 batch_size=4 num_sample_crops=16 num_steps=3 checkpoint_every=3 num_bootstrap=100 "
       "gen_width=8 gen_max_width=32 noise_channels=4 noise_width=16 disc_width=8 "
       "num_fig2_images=2 num_diversity_samples=2")
WIDTHS = {"desktop": 1280, "phone": 390}  # CSS pixels
# Anything that makes a page fetch from another host: an attribute of a loading tag, CSS url()/@import, or a
# script that imports or fetches. Quotes may be single, double or none; '//host' is protocol-relative.
EXTERNAL = r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}"""
LOADS = {
    "html": re.compile(r"""<(?!a[\s>])\w+[^>]*?\s(?:src|href|srcset|data|poster)\s*=\s*["']?\s*""" + EXTERNAL, re.I),
    "css": re.compile(r"""(?:url\(\s*["']?\s*|@import\s+(?:url\(\s*)?["']?\s*)""" + EXTERNAL, re.I),
    "js": re.compile(r"""(?:\bimport\s*\(\s*|\bfrom\s+|\bfetch\s*\(\s*|importScripts\s*\(\s*|\.src\s*=\s*)"""
                     r"""["'`]\s*""" + EXTERNAL, re.I),
}


def require_browser() -> None:
    """Skip where Chromium is missing, except in CI, where a missing browser is a failure, not a pass."""
    if CHROMIUM and CHROMEDRIVER:
        return
    reason = "needs Debian's chromium and chromium-driver (.ci/run and `make test` install them)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but no browser: {reason}")
    pytest.skip(reason)


def save_full_page(driver, path: Path, max_height: int = 16000) -> None:
    """A screenshot of the whole page, not only the window (Chrome DevTools' beyond-viewport capture)."""
    import base64

    width, height = driver.execute_script("return [document.documentElement.clientWidth, "
                                          "document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    p = plan.plan("smoke", METHODS, overrides=plan.parse_overrides(TOY), results_root=results)
    outcome = pipeline.run(p)  # builds the book with -W: a build warning fails here
    assert set(outcome.values()) == {"ran"}
    assert pipeline.run(p, book=False) == {name: "cached" for name in outcome}
    return p.out_dir


@pytest.mark.slow
def test_outputs_are_written(book: Path):
    for name in ("table1.csv", "table1.md", "fig2.png", "per_image_metrics.csv", "run_metadata.json",
                 "training_curves.png", "metric_distributions.png", "gallery.png"):
        assert (book / name).is_file(), name
    table = (book / "table1.md").read_text()
    assert "ColorGAN" in table and "grayscale (ab = 0)" in table and "paper PSNR (published)" in table


@pytest.mark.slow
def test_book_loads_nothing_from_the_network(book: Path):
    html = book / "html-build" / "_build" / "html"
    files = [p for p in html.rglob("*") if p.suffix in (".html", ".css", ".js", ".svg")]
    assert any(p.suffix == ".css" for p in files) and any(p.suffix == ".js" for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        kinds = {".html": ("html", "css", "js"), ".svg": ("html", "css"), ".css": ("css",), ".js": ("js",)}
        for kind in kinds[path.suffix]:
            found = LOADS[kind].findall(text)
            assert not found, f"{path.relative_to(html)} loads from the network: {found[:3]}"


def test_the_network_scan_catches_every_form():
    """The scan above must see loads written any of the ways HTML, CSS and JS allow."""
    html = ["<script src='https://cdn.x.org/a.js'>", '<link href="//fonts.example.com/f.css">',
            "<img src=http://x.org/i.png>", '<iframe data-foo="1" src="https://x.io">']
    css = ["a{background:url(https://x.org/b.png)}", "@import 'https://fonts.x.com/c.css';",
           '@import url("//x.org/d.css");']
    js = ["import('https://esm.sh/m')", "import m from \"https://x.org/m.js\"", "fetch(`//api.x.com/v`)",
          "s.src = 'https://x.org/y.js'"]
    for kind, samples in (("html", html), ("css", css), ("js", js)):
        for sample in samples:
            assert LOADS[kind].search(sample), sample
    harmless = ['<a href="https://github.com/x">', '<svg xmlns="http://www.w3.org/2000/svg">',
                "url(_static/x.png)", "// a comment about https://x.org", '<img src="_images/fig.png">']
    for sample in harmless:
        assert not any(rx.search(sample) for rx in LOADS.values()), sample


@pytest.fixture(scope="module")
def study_book(tmp_path_factory) -> Path:
    """The study profile at toy size (2 seeds, 4 steps per method) on a folder of written photos: data ->
    study -> summary, through papermill and Jupyter Book like `make reproduce PROFILE=study`."""
    photos = tmp_path_factory.mktemp("photos")
    write_images(photos, 40, size=(40, 40))
    toy = {"methods": AS_IS["study"]["methods"], "seeds": [0, 1], "num_images_seen": 16, "num_diversity_samples": 2,
           "num_fig2_images": 2, "num_bootstrap": 100, "base.image_size": 32, "base.batch_size": 4,
           "base.num_val_images": 4, "base.val_every": 2, "base.checkpoint_every": 2, "base.log_every": 1,
           "base.num_bootstrap": 100}
    p = plan.plan("study", METHODS, str(photos), overrides=toy, results_root=tmp_path_factory.mktemp("results"))
    assert set(pipeline.run(p).values()) == {"ran"}
    return p.out_dir


def book_pages(html: Path) -> list[str]:
    """Every page of a built book (index.html only redirects to the first page; the index and search pages
    are Sphinx's)."""
    return sorted(p.name for p in html.glob("*.html") if p.name not in ("genindex.html", "search.html", "index.html"))


def start_browser(tmp_path: Path):
    """Headless Chromium at 1280 px and a wait that tolerates elements replaced while a page loads."""
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    return driver, WebDriverWait(driver, 60, ignored_exceptions=(NoSuchElementException,
                                                                 StaleElementReferenceException))


def screenshot_dir(tmp_path: Path, book_name: str) -> Path:
    shots = Path(os.environ.get("BOOK_SCREENSHOTS") or tmp_path / "screenshots") / book_name
    shots.mkdir(parents=True, exist_ok=True)
    print(f"book screenshots: {shots}")
    return shots


def page_problems(driver, wait, html: Path, pages: list[str], shots: Path) -> list[str]:
    """Open every page at each of WIDTHS, keep a full-page screenshot, and list what a reader would trip on."""
    from selenium.webdriver.common.by import By

    problems = []
    for label, width in WIDTHS.items():
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 600})
        for page in pages:
            driver.get((html / page).as_uri())
            wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
            # lazy images load only when scrolled to: load them all, then check every one
            driver.execute_script("document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
            wait.until(lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)"))
            broken = driver.execute_script(
                "return Array.from(document.images).filter(i => !i.naturalWidth).map(i => i.src)")
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            code = [e for e in driver.find_elements(By.CSS_SELECTOR, ".cell_input, div.highlight-ipython3")
                    if e.is_displayed()]
            remote = driver.execute_script(
                "return performance.getEntriesByType('resource').map(e => e.name)"
                ".filter(n => !n.startsWith('file:') && !n.startsWith('data:'))")
            save_full_page(driver, shots / f"{page[:-5]}-{label}.png")
            unnamed = driver.execute_script(  # pandas' index shows as a first column without a name
                "return Array.from(document.querySelectorAll('table thead th:first-child'))"
                ".filter(e => !e.textContent.trim()).length")
            wide = driver.execute_script(  # at laptop width every table fits its column
                "return Array.from(document.querySelectorAll('.report-table'))"
                ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.querySelector('th').textContent)")
            if wide and width >= 1280:
                problems.append(f"{page} at {width} px: tables wider than the page: {wide}")
            if unnamed:
                problems.append(f"{page}: {unnamed} tables start with an unnamed (index) column")
            if broken:
                problems.append(f"{page} at {width} px: images that did not load: {broken}")
            if overflow > 1:
                problems.append(f"{page} at {width} px: the page scrolls sideways by {overflow} px")
            if code:
                problems.append(f"{page} at {width} px: {len(code)} code cells shown without opening a toggle")
            if remote:
                problems.append(f"{page} at {width} px: fetched {remote}")
    return problems


def body_text(driver, wait, page: Path, expected: str) -> str:
    """The text of ``page`` once ``expected`` shows (index.html is a redirect: wait for its target)."""
    from selenium.webdriver.common.by import By

    driver.get(page.as_uri())
    wait.until(lambda d: expected in d.find_element(By.TAG_NAME, "body").text)
    return driver.find_element(By.TAG_NAME, "body").text


@pytest.mark.slow
def test_book_renders_in_chromium(book: Path, tmp_path: Path):
    """Every page at 1280 and 390 px: no sideways page scroll, every image loaded, no code shown unless its
    toggle is opened, nothing fetched from outside the book. Screenshots: $BOOK_SCREENSHOTS or tmp_path."""
    require_browser()
    from selenium.webdriver.common.by import By

    shots = screenshot_dir(tmp_path, "smoke")
    html = book / "html-build" / "_build" / "html"
    pages = book_pages(html)
    chapters = {"intro.html", "data.html", "table1.html", "report.html"} | {f"train_{m}.html" for m in METHODS}
    assert chapters <= set(pages), pages
    driver, wait = start_browser(tmp_path)
    try:
        body = body_text(driver, wait, html / "index.html", "Not comparable with the paper")
        for expected in ("grayscale", "PSNR, paper", "How long it took"):
            assert expected in body, expected
        assert "2026" in body and "colorgan-repro contributors" in body and "2023" not in body
        problems = page_problems(driver, wait, html, pages, shots)
        # a code toggle opens: the code is hidden, not removed
        driver.get((html / "table1.html").as_uri())
        toggle = driver.find_element(By.CSS_SELECTOR, "details.hide.above-input > summary")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", toggle)
        toggle.click()
        wait.until(lambda d: any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, ".cell_input")))
        # figures open at full resolution on a click (Fig. 2, the gallery, curves, distributions)
        assert len(driver.find_elements(By.CSS_SELECTOR, ".cell_output a.image-reference > img")) >= 4
    finally:
        driver.quit()
    assert not problems, "\n".join(problems)
    assert len(list(shots.glob("*.png"))) == 2 * len(pages)


@pytest.mark.slow
def test_study_book_renders_in_chromium(study_book: Path, tmp_path: Path):
    """The study profile's book: the front page gives the verdicts, the Reproducibility summary reads in the
    challenge's structure with its computed claims table, and every page passes the same checks."""
    require_browser()
    shots = screenshot_dir(tmp_path, "study")
    html = study_book / "html-build" / "_build" / "html"
    pages = book_pages(html)
    assert {"intro.html", "data.html", "study.html", "summary.html"} <= set(pages), pages
    driver, wait = start_browser(tmp_path)
    try:
        front = body_text(driver, wait, html / "index.html", "Not comparable with the paper")
        assert "Verdicts on the paper" in front and "PSNR, paper" in front
        assert "gen_width=16" in front  # the study's own ColorGAN widths, not the config defaults
        summary = body_text(driver, wait, html / "summary.html", "Reproducibility summary")
        for section in ("Scope", "Claims", "Method", "Results", "Diversity", "What was easy, what was difficult",
                        "Deviations from the paper", "Claims, evidence, verdicts"):
            assert section in summary, section
        assert "ColorGAN > ChromaGAN on PSNR" in summary and "make ablations PROFILE=study" in summary
        problems = page_problems(driver, wait, html, pages, shots)
    finally:
        driver.quit()
    assert not problems, "\n".join(problems)
    assert len(list(shots.glob("*.png"))) == 2 * len(pages)


def test_a_missing_browser_fails_in_ci(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true but no browser"):
        require_browser()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        require_browser()


@pytest.mark.slow
def test_a_build_warning_fails_the_book(tmp_path):
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    p = plan.plan("smoke", METHODS, results_root=tmp_path)
    (p.out_dir / "notebooks").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Data\n\n![a figure](missing.png)")],
                                metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                         "language": "python"}}),
                   p.out_dir / "notebooks" / "data.ipynb")
    with pytest.raises(RuntimeError, match="missing.png"):
        book_build.build_book(p)
