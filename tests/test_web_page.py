"""The web page in headless Chromium: upload a photo, wait for the scores, check the drawn boxes, screenshot.

Needs the python ``playwright`` package and a system Chromium (/usr/bin/chromium, Debian package); skipped
cleanly when either is missing. ``playwright install`` is never run: the system browser is used.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from deploy_fixtures import faces_scene, tiny_checkpoint

CHROMIUM = os.environ.get("OPENFAS_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")
if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)

import uvicorn  # noqa: E402

from openfas.deploy.predictor import Predictor  # noqa: E402
from openfas.deploy.server import ServeSettings, create_app  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Predictor]]:
    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(tiny_checkpoint(tmp_path_factory.getbasetemp(), tiny_cache))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(predictor, ServeSettings()), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", predictor
    srv.should_exit = True
    thread.join(10)


def test_upload_through_the_page_shows_scores_and_boxes(server: tuple[str, Predictor], tmp_path: Path) -> None:
    url, predictor = server
    scene = faces_scene(2, 110)
    photo = tmp_path / "two_faces.png"
    cv2.imwrite(str(photo), scene)
    expected = predictor.predict(scene)
    shot = tmp_path / "page.png"
    try:
        pw = sync_api.sync_playwright().start()
    except Exception as err:  # noqa: BLE001 - e.g. the driver cannot start in this environment
        pytest.skip(f"playwright cannot start: {err}")
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        console: list[str] = []
        page.on("console", lambda msg: console.append(msg.text))
        page.goto(url + "/")
        page.set_input_files("#file", str(photo))
        page.wait_for_selector(".face .score", timeout=30_000)
        texts = page.locator(".face").all_inner_texts()
        assert len(texts) == 2
        for text, face in zip(texts, expected.faces, strict=True):
            assert f"score {face.score:.4f}" in text
            assert ("LIVE" if face.live else "SPOOF") in text
        assert page.locator(".maps canvas").count() == 2
        assert "2 face(s)" in page.locator("#status").inner_text()
        # the face boxes are drawn on the canvas in the decision colour
        colour = (25, 163, 74) if expected.faces[0].live else (217, 48, 37)
        b = expected.faces[0].box
        get = "([x, y]) => Array.from(document.getElementById('view').getContext('2d').getImageData(x, y, 1, 1).data)"
        edge = [page.evaluate(get, [round(b.x + b.w / 2), y]) for y in (round(b.y) - 1, round(b.y))]
        assert any(max(abs(px[i] - colour[i]) for i in range(3)) <= 2 for px in edge), edge
        page.screenshot(path=str(shot), full_page=True)
        assert not [m for m in console if "Content Security Policy" in m], console  # the page's CSP blocks nothing
        browser.close()
    finally:
        pw.stop()
    keep = os.environ.get("OPENFAS_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 300 and img.shape[1] > 600
    assert float(img.std()) > 20 and len(np.unique(img.reshape(-1, 3), axis=0)) > 500  # not blank
