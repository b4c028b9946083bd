"""End to end: the pipeline at toy size through real papermill, the rendered book opened in Chromium."""

import re
import shutil
from pathlib import Path

import pytest

from colorgan import pipeline
from colorgan.cli import METHODS

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOY = ("image_size=32 batch_size=4 num_sample_crops=16 num_steps=3 checkpoint_every=3 num_bootstrap=100 "
       "gen_width=8 gen_max_width=32 noise_channels=4 noise_width=16 disc_width=8 "
       "num_fig2_images=2 num_diversity_samples=2")


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    p = pipeline.plan("smoke", METHODS, overrides=pipeline.parse_overrides(TOY), results_root=results)
    outcome = pipeline.run(p)
    assert set(outcome.values()) == {"ran"}
    assert pipeline.run(p, book=False) == {name: "cached" for name in outcome}
    return p.out_dir


@pytest.mark.slow
def test_outputs_are_written(book: Path):
    for name in ("table1.csv", "table1.md", "fig2.png", "per_image_metrics.csv", "run_metadata.json"):
        assert (book / name).is_file(), name
    table = (book / "table1.md").read_text()
    assert "ColorGAN" in table and "grayscale (ab = 0)" in table and "paper PSNR (published)" in table


@pytest.mark.slow
def test_book_loads_nothing_from_the_network(book: Path):
    html = book / "html-build" / "_build" / "html"
    for page in html.glob("*.html"):
        text = page.read_text()
        external = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not external, f"{page.name} loads {external}"


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver "
                    "(.ci/run and `make test` install them)")
def test_book_renders_in_chromium(book: Path, tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        html = book / "html-build" / "_build" / "html"
        driver.get((html / "index.html").as_uri())
        # index.html is Jupyter Book's redirect to the first page: wait until that page has loaded
        WebDriverWait(driver, 30, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
            lambda d: "Not comparable with the paper" in d.find_element(By.TAG_NAME, "body").text)
        assert "ColorGAN" in driver.title
        driver.save_screenshot(str(tmp_path / "index.png"))
        driver.get((html / "table1.html").as_uri())
        rows = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table tr")]
        for method in ("ColorGAN", "grayscale (ab = 0)"):
            assert any(row.startswith(f"{i} {method}") or method in row for i, row in enumerate(rows)), rows
        images = driver.find_elements(By.CSS_SELECTOR, "img")
        assert images
        widths = [driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", im)
                  for im in images]
        assert all(w and w > 0 for w in widths), widths
        assert driver.save_screenshot(str(tmp_path / "table1.png"))
        assert (tmp_path / "table1.png").stat().st_size > 10_000
    finally:
        driver.quit()
