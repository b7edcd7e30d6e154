"""HTTP service: health, scoring through the API equals the Predictor, the bad-input matrix as 4xx JSON, upload
limits, load shedding (503) and the page at /."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import pytest
from deploy_fixtures import GatedBackend, faces_scene

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("multipart")

from fastapi.testclient import TestClient  # noqa: E402
from test_predictor import BAD_INPUT_EXPECTED, bad_input_files  # noqa: E402

from openfas.deploy.predictor import Predictor  # noqa: E402
from openfas.deploy.server import ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(predictor: Predictor) -> TestClient:
    return TestClient(create_app(predictor, ServeSettings(max_upload_bytes=2_000_000, max_side=4096)))


def _png(image) -> bytes:  # noqa: ANN001
    return cv2.imencode(".png", image)[1].tobytes()


def test_health_docs_and_page(client: TestClient, predictor: Predictor) -> None:
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model"] == "pixelnet" and h["threshold"] == pytest.approx(predictor.threshold)
    spec = client.get("/openapi.json").json()
    assert "/v1/liveness" in spec["paths"] and "post" in spec["paths"]["/v1/liveness"]
    assert client.get("/docs").status_code == 404  # Swagger UI loads from a CDN: off unless docs=True
    page = client.get("/")
    assert page.status_code == 200 and 'id="file"' in page.text and "v1/liveness" in page.text


def test_scores_through_http_equal_the_predictor(client: TestClient, predictor: Predictor) -> None:
    scene = faces_scene(3, 100)
    res = client.post("/v1/liveness", files={"image": ("scene.png", _png(scene), "image/png")})
    assert res.status_code == 200, res.text
    body = res.json()
    direct = predictor.predict(scene)
    assert (body["width"], body["height"]) == (scene.shape[1], scene.shape[0])
    assert len(body["faces"]) == 3
    for got, want in zip(body["faces"], direct.faces, strict=True):
        assert got["score"] == pytest.approx(want.score, abs=1e-6)
        assert got["live"] == want.live
        # the JSON rounds boxes to 0.01 px (the detector may run on a downscaled copy: fractional boxes)
        assert (got["box"]["x"], got["box"]["w"]) == pytest.approx((want.box.x, want.box.w), abs=0.005)
        assert len(got["map"]) == 8 and len(got["map"][0]) == 8
    nomap = client.post("/v1/liveness?include_map=false", files={"image": ("a.png", _png(scene), "image/png")})
    assert "map" not in nomap.json()["faces"][0]


def test_bad_input_matrix_over_http(client: TestClient, tmp_path: Path) -> None:
    files = bad_input_files(tmp_path)
    # the service takes 8-bit images only (16-bit ones cost several times more to decode): 415, not scored
    over_http = {**BAD_INPUT_EXPECTED, "png16": ("error", ("unsupported_bit_depth", 415))}
    for name, (kind, expected) in over_http.items():
        res = client.post("/v1/liveness", files={"image": (files[name].name, files[name].read_bytes())})
        if kind == "error":
            code, status = expected  # type: ignore[misc]
            assert res.status_code == status, (name, res.text)
            err = res.json()["error"]
            assert err["code"] == code and err["message"], name
        else:
            assert res.status_code == 200, (name, res.text)
            assert len(res.json()["faces"]) == expected, name
    # the dimension limit of the service (4096) is what the 10000×10000 image hits
    huge = client.post("/v1/liveness", files={"image": ("h.png", files["huge"].read_bytes())})
    assert "4096" in huge.json()["error"]["message"]
    # no file field / wrong field name
    assert client.post("/v1/liveness").status_code == 400
    assert client.post("/v1/liveness", files={"photo": ("a.png", b"x")}).json()["error"]["code"] == "bad_request"


def test_upload_size_limit_and_hostile_file_name(client: TestClient, tmp_path: Path) -> None:
    big = b"\xff\xd8" + b"\x00" * 2_500_000
    res = client.post("/v1/liveness", files={"image": ("big.jpg", big)})
    assert res.status_code == 413 and res.json()["error"]["code"] == "file_too_large"
    before = set(Path.cwd().iterdir())
    ok = client.post("/v1/liveness", files={"image": ("../../../../tmp/evil.png", _png(faces_scene(1, 100)))})
    assert ok.status_code == 200 and "evil" not in ok.text
    assert set(Path.cwd().iterdir()) == before and not Path("/tmp/evil.png").exists()


def test_saturated_service_answers_503(predictor: Predictor) -> None:
    gated = Predictor(GatedBackend(predictor.backend), predictor.meta)
    app = create_app(gated, ServeSettings(max_concurrency=1, max_queue=1))
    image = _png(faces_scene(1, 100))
    results: list[int] = []
    with TestClient(app) as c:
        def call() -> None:
            results.append(c.post("/v1/liveness", files={"image": ("a.png", image)}).status_code)

        first = threading.Thread(target=call)
        first.start()
        assert gated.backend.entered.wait(20)  # the single worker is busy
        second = threading.Thread(target=call)  # waits in the queue (capacity 1 + 1)
        second.start()
        deadline = time.time() + 10
        while c.get("/healthz").json()["in_flight"] < 2 and time.time() < deadline:
            time.sleep(0.01)
        shed = c.post("/v1/liveness", files={"image": ("a.png", image)})
        assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
        assert shed.json()["error"]["code"] == "busy"
        gated.backend.release.set()
        first.join(30)
        second.join(30)
    assert sorted(results) == [200, 200]
