"""A real browser test: chapter 2's prompt-learning playground in JupyterLab, in headless Chromium.

It starts ``jupyter lab`` on loopback (random port, random token, a throw-away copy of the notebook, the smoke
profile, hub and network off), opens ``02_prompt_learning.ipynb`` in Debian's ``chromium`` driven by Playwright
(the system browser through ``executable_path``: ``playwright install`` downloads from a CDN and is not used),
runs every cell above the playground and then the playground cell, and checks that the ipywidgets render and
react: typing a sentence and pressing **Score** draws a chart in the widget's output, a second sentence draws a
different one, and a template without ``[X]`` replaces it with the error message as text.

Screenshots (before / after each step) go to ``artifacts/browser/`` (``$COURSE_BROWSER_ARTIFACTS`` overrides).

Without chromium or the ``playwright`` package the test skips with the reason; ``make browser-test`` (and CI)
set ``COURSE_REQUIRE_BROWSER=1``, which turns that skip into a failure. The browser is kept off the internet:
every request that is not to the loopback server is aborted and reported, and JupyterLab's news and update
checks are off.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_prompt_learning.ipynb"
PLAYGROUND_CALL = "prompt_learning_playground("
REQUIRE_ENV = "COURSE_REQUIRE_BROWSER"
CHROMIUM_ENV = "COURSE_CHROMIUM"
ARTIFACTS_ENV = "COURSE_BROWSER_ARTIFACTS"
SERVER_START_S = 90
CELLS_TIMEOUT_S = 240  # the cells above the playground: ~1 min in the smoke profile on the 2-core CI machine
FIX = ("install Debian's chromium (`apt-get install -y chromium`) and the driver "
       "(`.venv/bin/pip install -e '.[dev]'`, which has playwright), or point $COURSE_CHROMIUM at a "
       "Chromium/Chrome binary")


def _unavailable(reason: str):
    """Skip, or fail under ``make browser-test`` / CI (``COURSE_REQUIRE_BROWSER=1``)."""
    msg = f"browser test not run: {reason}; {FIX}"
    if os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(msg + f" ({REQUIRE_ENV}=1 makes a missing browser a failure)", pytrace=False)
    pytest.skip(msg)


def find_chromium() -> str | None:
    """``$COURSE_CHROMIUM``, else the first of Debian's / the usual Chromium and Chrome binaries on PATH."""
    env = os.environ.get(CHROMIUM_ENV)
    if env:
        return env if Path(env).is_file() and os.access(env, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    with opener.open(url, timeout=timeout) as r:
        return r.read()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    out = Path(os.environ.get(ARTIFACTS_ENV) or ROOT / "artifacts" / "browser").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    return out


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        _unavailable("no chromium binary (looked for $COURSE_CHROMIUM, chromium, chromium-browser, google-chrome)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the Python package `playwright` is not installed")
    return path


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, artifacts):
    """``jupyter lab`` on 127.0.0.1 serving a copy of chapter 2; yields (base URL, token); killed afterwards."""
    assert NOTEBOOK.exists(), f"{NOTEBOOK} is missing: run `make notebooks`"
    tmp = tmp_path_factory.mktemp("lab")
    root, cfg = tmp / "root", tmp / "config"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)  # autosave writes here, never into notebooks/
    settings = cfg / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    tracker = cfg / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))  # all cells in DOM
    (cfg / "jupyter_server_config.json").write_text(json.dumps({
        "LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                   "expose_app_in_browser": True, "extension_manager": "readonly",  # no PyPI queries
                   "user_settings_dir": str(cfg / "lab" / "user-settings"),
                   "workspaces_dir": str(cfg / "lab" / "workspaces")},
        "ServerApp": {"open_browser": False, "allow_root": True},  # CI containers run as root
    }))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel must use the inline backend
    env.update(COURSE_PROFILE="smoke", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COURSE_BLOCK_NETWORK="1",
               JUPYTER_CONFIG_DIR=str(cfg), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               IPYTHONDIR=str(tmp / "ipython"), PYTHONUNBUFFERED="1")
    log_path = artifacts / "jupyter-lab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--port-retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}; log:\n{log_path.read_text()[-3000:]}")
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer within {SERVER_START_S} s; see {log_path}")
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


# JavaScript run in the page (JupyterLab exposes `window.jupyterapp` with expose_app_in_browser).
_PANEL = ("(() => { const a = window.jupyterapp; const w = a && a.shell && a.shell.currentWidget; "
          "return w && w.content && w.sessionContext ? w : null; })()")
_SELECT_PLAYGROUND = """(needle) => {
  const panel = %s;
  const cells = panel.content.widgets;
  const i = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes(needle));
  if (i >= 0) {
    panel.content.activeCellIndex = i; panel.content.deselectAll();
    cells[i].node.setAttribute('data-browser-test', 'playground');
  }
  return i;
}""" % _PANEL
_PROGRESS = """(upto) => {
  const panel = %s;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.slice(0, upto + 1).filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) {
    for (const o of c.model.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  return {status: kernel ? kernel.status : 'none',
          done: cells.filter(c => c.model.executionCount !== null).length,
          total: cells.length, errors};
}""" % _PANEL


def _wait_cells(page, upto: int, timeout_s: float) -> dict:
    """Wait until every code cell up to ``upto`` has run and the kernel is idle; fail on an error output."""
    deadline = time.monotonic() + timeout_s
    while True:
        p = page.evaluate(_PROGRESS, upto)
        assert not p["errors"], f"a notebook cell raised: {p['errors']}"
        if p["done"] == p["total"] and p["status"] == "idle":
            return p
        assert time.monotonic() < deadline, f"cells not done after {timeout_s} s: {p}"
        time.sleep(1)


def test_chapter2_playground_renders_and_updates(chromium, lab_server, artifacts):
    from playwright.sync_api import expect, sync_playwright

    base, token = lab_server
    blocked: list[str] = []
    shots: list[Path] = []
    t0 = time.monotonic()

    def shot(page, name):
        path = artifacts / f"{len(shots) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=False)
        shots.append(path)

    def route(r):
        host = urlparse(r.request.url).hostname or ""
        if r.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium, headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.wait_for_function("() => !!%s && %s.sessionContext.isReady" % (_PANEL, _PANEL),
                                   timeout=SERVER_START_S * 1000)
            page.wait_for_function("() => %s.sessionContext.session.kernel.status === 'idle'" % _PANEL,
                                   timeout=SERVER_START_S * 1000)
            idx = page.evaluate(_SELECT_PLAYGROUND, PLAYGROUND_CALL)
            assert idx >= 0, f"no code cell calls {PLAYGROUND_CALL!r} in {NOTEBOOK.name}"
            shot(page, "opened")

            # Run every cell above the playground, then the playground cell itself (Run menu commands).
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
            page.evaluate(_SELECT_PLAYGROUND, PLAYGROUND_CALL)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-above')")
            progress = _wait_cells(page, idx - 1, CELLS_TIMEOUT_S)
            page.evaluate(_SELECT_PLAYGROUND, PLAYGROUND_CALL)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
            _wait_cells(page, idx, CELLS_TIMEOUT_S)
            t_cells = time.monotonic() - t0

            page.evaluate(_SELECT_PLAYGROUND, PLAYGROUND_CALL)
            cell = page.locator("[data-browser-test=playground]")
            widget = cell.locator(".jp-OutputArea .widget-vbox").first
            widget.scroll_into_view_if_needed()
            expect(widget).to_be_visible()
            inputs = widget.locator(".widget-text input")
            expect(inputs).to_have_count(3)
            sentence, template = inputs.nth(0), inputs.nth(1)
            expect(sentence).to_have_value("I accidentally missed the bus.")
            button = widget.locator("button", has_text="Score")
            output = widget.locator(".widget-output")
            expect(output.locator("img")).to_have_count(0)  # the Output is empty until Score is pressed
            shot(page, "playground-rendered")

            # 1. a new sentence + Score -> a chart in the widget's own output
            sentence.fill("What a wonderful, sunny day!")
            button.click()
            img = output.locator("img")
            expect(img).to_have_count(1, timeout=60_000)
            first_src = img.get_attribute("src")
            assert first_src and first_src.startswith("data:image/png"), first_src
            widget.scroll_into_view_if_needed()
            shot(page, "after-score-1")

            # 2. another sentence -> a different chart
            sentence.fill("This is the worst service I have ever had.")
            button.click()
            page.wait_for_function(
                "([el, old]) => { const i = el.querySelector('img'); return i && i.src !== old; }",
                arg=[output.element_handle(), first_src], timeout=60_000)
            widget.scroll_into_view_if_needed()
            shot(page, "after-score-2")

            # 3. a template without [X] -> the output is replaced by the error message, as text
            template.fill("no slots here")
            button.click()
            expect(output.locator("img")).to_have_count(0, timeout=60_000)
            expect(output).to_contain_text("[X]", timeout=60_000)
            widget.scroll_into_view_if_needed()
            shot(page, "after-bad-template")
            context.close()
        finally:
            browser.close()

    print(f"\nbrowser test: {progress['total']} code cells above the playground ran; cells {t_cells:.0f} s, "
          f"total {time.monotonic() - t0:.0f} s; screenshots in {artifacts}:")
    for p in shots:
        print(f"  {p}")
    assert not blocked, f"the page tried to leave loopback (requests aborted): {sorted(set(blocked))[:10]}"
