"""The app in a real browser: ``streamlit run app.py`` as a subprocess, driven by headless Chromium.

Every page and a neuron URL are loaded; no Streamlit exception or error box may appear and the page's
main figure must render. Screenshots (1280x800) go to ``$LAKE_BROWSER_TEST_ARTIFACTS`` (default: a
temporary folder); ``LAKE_BROWSER_TEST_ARTIFACTS=docs/screenshots`` refreshes the documentation images.
The app runs its default model (offline DINOv2-S/14) unless ``LAKE_BROWSER_TEST_MODEL`` names another.
Skipped when ``/usr/bin/chromium`` or Playwright is missing. Every wait is bounded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
RUN_TIMEOUT_MS = 150_000  # one page run, including first-use builds (model load, demo atlas)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run browser tests")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    cache = tmp_path_factory.mktemp("browser_cache")
    env = {**os.environ, "LAKE_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    env.pop("LAKE_APP_MODEL", None)
    if os.environ.get("LAKE_BROWSER_TEST_MODEL"):
        env["LAKE_APP_MODEL"] = os.environ["LAKE_BROWSER_TEST_MODEL"]
    port = _free_port()
    log_path = cache / "streamlit.log"
    with open(log_path, "w") as log:
        yield from _serve(port, env, log, log_path, cache)


def _serve(port: int, env: dict, log, log_path: Path, cache: Path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not become healthy within 60 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {"base": base, "cache": cache, "log": log_path}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            tab = browser.new_page(viewport=VIEWPORT)
            tab.set_default_timeout(30_000)
            yield tab
        finally:
            browser.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = os.environ.get("LAKE_BROWSER_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("browser_artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_idle(tab, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the app's script run has finished (bounded)."""
    tab.wait_for_selector('[data-testid="stApp"]', timeout=30_000)
    tab.wait_for_timeout(800)
    tab.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
    tab.wait_for_timeout(1200)  # let figures draw


def load(tab, url: str) -> None:
    tab.goto(url, timeout=60_000)
    wait_idle(tab)


def assert_clean(tab, log: Path) -> None:
    exceptions = tab.locator('[data-testid="stException"]').all_inner_texts()
    errors = tab.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not exceptions and not errors, (exceptions, errors, log.read_text()[-2000:])


def shot(tab, folder: Path, name: str, anchor: str | None = None) -> None:
    """Screenshot of the viewport, optionally scrolled so that the text ``anchor`` is at the top."""
    if anchor is not None:
        tab.get_by_text(anchor, exact=False).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        tab.wait_for_timeout(1000)
    path = folder / f"{name}.png"
    tab.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)  # ~3x smaller files


def count(tab, selector: str) -> int:
    return tab.locator(selector).count()


def test_detector_page(server, page, artifacts):
    load(page, server["base"] + "/")
    assert_clean(page, server["log"])
    assert page.locator("h1").first.inner_text() == "Detector"
    assert count(page, '[data-testid="stImage"] img') >= 4 + 20  # support strip + every test image
    assert count(page, ".js-plotly-plot") >= 1  # neuron contributions of the chosen patch
    assert count(page, '[data-testid="stMetric"]') >= 5
    shot(page, artifacts, "detector")
    shot(page, artifacts, "detector_maps", "Test images and anomaly maps")
    shot(page, artifacts, "detector_explain", "Which neurons make this patch anomalous?")
    page.get_by_text("Ablate", exact=True).first.click()
    wait_idle(page)
    assert_clean(page, server["log"])
    assert page.get_by_text("ablated · score", exact=False).count() == 1
    assert page.get_by_text("Image AUROC (ablated)", exact=False).count() == 1
    shot(page, artifacts, "detector_ablation", "Ablate neurons in the forward pass")


def test_detector_upload_bad_files(server, page, artifacts, tmp_path):
    load(page, server["base"] + "/")
    page.get_by_text("Upload images", exact=True).click()
    wait_idle(page)
    grey, good = tmp_path / "grey.png", tmp_path / "part.png"
    Image.new("L", (96, 64), 120).save(grey)
    Image.new("RGB", (96, 64), (200, 180, 40)).save(good)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    inputs = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    assert inputs.count() == 2
    inputs.nth(0).set_input_files([str(grey)])
    wait_idle(page)
    inputs.nth(1).set_input_files([str(good), str(bad)])
    wait_idle(page)
    assert count(page, '[data-testid="stException"]') == 0
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert len(errors) == 1 and "broken.png" in errors[0] and "Upload refused" in errors[0]
    assert page.get_by_text("converted from mode L to RGB", exact=False).count() == 1
    assert page.get_by_text("No ground truth for these images", exact=False).count() == 1
    assert count(page, '[data-testid="stImage"] img') >= 2
    shot(page, artifacts, "detector_upload")


def test_atlas_page_and_heatmap_click(server, page, artifacts):
    load(page, server["base"] + "/atlas")
    assert_clean(page, server["log"])
    assert count(page, ".js-plotly-plot") >= 2  # layer x neuron, selected sets by category
    shot(page, artifacts, "atlas")
    shot(page, artifacts, "atlas_sets", "Selected sets by category")
    demo = page.get_by_text("Demo atlas (built for the selected model)", exact=True)
    if page.get_by_text("Project atlas (docs/atlas)", exact=True).count():
        demo.click()  # the project atlas is the default when docs/atlas exists; build the demo one too
        wait_idle(page)
        assert_clean(page, server["log"])
    assert page.get_by_text("Demo atlas ready", exact=False).count() == 1  # built on first use, with a status box
    assert count(page, ".js-plotly-plot") >= 2
    heatmap = page.locator(".js-plotly-plot").first
    heatmap.evaluate("e => e.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(800)
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_url("**/neuron?**", timeout=30_000)
    wait_idle(page)
    assert_clean(page, server["log"])
    assert page.locator("h1").first.inner_text().startswith("Neuron #")


def _top_neuron(cache: Path) -> tuple[str, int, int]:
    """The selected neuron with the largest effect size at the deepest detector layer of the demo atlas."""
    from lake_interp.detector import LakeConfig

    folder = next((cache / "app" / "atlas").iterdir())
    atlas = pd.read_parquet(folder / "atlas.parquet")
    layer = min(max(LakeConfig().layers), int(atlas.layer.max()))
    rows = atlas[(atlas.site == "resid") & (atlas.layer == layer) & atlas.selected]
    row = rows.sort_values("effect_size", ascending=False).iloc[0]
    return folder.name, layer, int(row.neuron)


def test_neuron_url(server, page, artifacts):
    model, layer, neuron = _top_neuron(server["cache"])
    load(page, f"{server['base']}/neuron?model={model}&site=resid&layer={layer}&neuron={neuron}")
    assert_clean(page, server["log"])
    assert page.locator("h1").first.inner_text() == f"Neuron #{neuron} · resid · layer {layer}"
    assert count(page, ".js-plotly-plot") >= 3  # categories, live histogram, atlas stats, ablation
    assert count(page, '[data-testid="stImage"] img') >= 8  # top-activating patches
    assert "neuron=" in page.url and f"layer={layer}" in page.url
    shot(page, artifacts, "neuron")
    shot(page, artifacts, "neuron_patches", "Activations on normal and defect patches")


def test_studies_page_live_run(server, page, artifacts):
    load(page, server["base"] + "/studies")
    assert_clean(page, server["log"])
    page.get_by_role("tab", name="Run live").click()
    page.get_by_text("Run on the demo category", exact=True).click()
    wait_idle(page)
    assert_clean(page, server["log"])
    assert count(page, ".js-plotly-plot") >= 2
    shot(page, artifacts, "studies_live", "Selection controls, live on the demo category")
    # the first study with results in analyses/ (else the first tab, which says how to produce them)
    names = ["Selection controls", "Ablation", "Activation patching", "Overlap", "Robustness"]
    for name in names + names[:1]:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(1500)
        if page.locator('[role="tabpanel"]:visible .js-plotly-plot').count():
            break
    assert_clean(page, server["log"])
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, artifacts, "studies")


def test_about_page(server, page, artifacts):
    load(page, server["base"] + "/about")
    assert_clean(page, server["log"])
    code = page.locator('[data-testid="stCode"]').first.inner_text()
    assert "2604.07802" in code and "2103.13003" in code
    assert page.get_by_text("CC BY-SA 4.0", exact=False).count() >= 1
    shot(page, artifacts, "about")
