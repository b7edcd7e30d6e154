"""HTTP liveness service (FastAPI): ``POST /v1/liveness``, ``GET /healthz``, OpenAPI docs and a web page at ``/``.

Run it with ``openfas serve CKPT`` (uvicorn) or ``uvicorn`` on :func:`create_app`. Behaviour:

* one :class:`~openfas.deploy.predictor.Predictor` is loaded once, before the server accepts requests;
* uploads: multipart field ``image``; the body is counted while it streams in (also chunked uploads without a
  ``Content-Length``) and a request over ``max_upload_bytes`` (plus multipart overhead) is cut off with 413; the
  uploaded file is never written under a name from the request (no request path or file name ever reaches the
  filesystem);
* an upload is checked (size, image format and dimensions from its header, truncation) BEFORE it takes an
  admission slot, so bad requests never crowd out good ones;
* responses carry ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer`` and a Content-Security-Policy (the page's inline script and style are allowed by their hashes);
  ``openfas serve`` sends no ``Server`` banner; ``/docs`` (Swagger UI, which loads its assets from a public CDN) is
  off unless ``ServeSettings(docs=True)`` / ``openfas serve --docs``; ``/openapi.json`` is always there;
* image limits: the size is read from the file header; images over ``max_side`` / ``max_pixels`` are REJECTED
  with 413 (not downscaled);
* bounded concurrency: at most ``max_concurrency`` images are decoded and scored at once (a thread pool of that
  size); up to ``max_queue`` more requests wait; beyond that the service answers **503** at once with
  ``Retry-After: 1`` (load shedding, never an unbounded queue);
* errors are JSON ``{"error": {"code", "message"}}``: 400 empty upload / missing field, 413 too large,
  415 not an image / unsupported format, 422 truncated or corrupt image, 503 busy;
* an image without a face is a normal 200 answer with ``"faces": []``; every face found is returned.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openfas import _version
from openfas.deploy.predictor import Predictor
from openfas.deploy.uploads import ImageInputError, ImageLimits, check_image_bytes, decode_image_bytes

_MULTIPART_OVERHEAD = 64 * 1024
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "file_too_large"}


@dataclass(frozen=True)
class ServeSettings:
    """Limits of the service (all configurable from ``openfas serve``)."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_side: int = 4096
    max_pixels: int = 16_777_216
    max_concurrency: int = 2
    max_queue: int = 8
    return_map: bool = True
    docs: bool = False  # Swagger UI at /docs (its JS/CSS come from a public CDN: off by default)
    max_bit_depth: int = 8  # 16-bit images cost several times an 8-bit one to decode and convert: 415
    work_timeout_s: float = 10.0  # most seconds one image may hold a worker (checked between stages): 503
    header_timeout_s: float = 10.0  # most seconds a client may take to send a request's headers
    body_timeout_s: float = 30.0  # most seconds a client may take to send a request's body
    large_pixels: int = 4_194_304  # images over this many pixels are scored one at a time (more at once: 503)

    def limits(self) -> ImageLimits:
        return ImageLimits(self.max_upload_bytes, self.max_side, self.max_pixels, self.max_bit_depth)


class _BodyLimit:
    """Pure ASGI middleware: 413 as soon as a request body exceeds ``limit`` bytes (declared or streamed), 408
    (and the connection closed) when the whole body has not arrived within ``timeout_s`` seconds."""

    def __init__(self, app: Any, limit: int, timeout_s: float = 30.0) -> None:
        self.app, self.limit, self.timeout_s = app, limit, timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _send_error(send, 413, "file_too_large",
                              f"request body is {int(declared)} bytes; the upload limit is {self.limit} bytes")
            return
        seen = 0
        exceeded = started = slow = False
        deadline = time.monotonic() + self.timeout_s

        async def limited_receive() -> dict:
            nonlocal seen, exceeded, slow
            if exceeded or slow:
                return {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                slow = True
                raise _TooLarge() from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if exceeded or slow:  # the app's reaction to the cut-off body (FastAPI answers 400 "error parsing …")
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not (exceeded or slow):
                raise
        if exceeded and not started:
            await _send_error(send, 413, "file_too_large", f"request body exceeds {self.limit} bytes")
        elif slow and not started:
            await _send_error(send, 408, "request_timeout", f"the request body did not arrive within "
                              f"{self.timeout_s:g} s", close=True)


class _TooLarge(Exception):
    pass


async def _send_error(send: Any, status: int, code: str, message: str, close: bool = False) -> None:
    import json

    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})


class _SecurityHeaders:
    """Pure ASGI middleware: security headers on every response; the page at ``/`` gets ``page_csp``. No
    ``Server`` header passes through (uvicorn's own banner is switched off in :func:`serve`)."""

    BASE = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin")]
    API_CSP = b"default-src 'none'; frame-ancestors 'none'"

    def __init__(self, app: Any, page_csp: str, exempt: tuple[str, ...] = ()) -> None:
        self.app, self.page_csp, self.exempt = app, page_csp.encode(), exempt

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = None if path in self.exempt else self.page_csp if path == "/" else self.API_CSP

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers += self.BASE + ([(b"content-security-policy", csp)] if csp else [])
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def page_csp(page: str) -> str:
    """Content-Security-Policy of the web page: nothing from elsewhere; its inline ``<script>`` and ``<style>``
    blocks allowed by their SHA-256 (CSP level 2 hash sources), so no 'unsafe-inline'."""
    def hashes(tag: str) -> str:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'"
                        for b in blocks) or "'none'"
    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; "
            "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; connect-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class _Admission:
    """At most ``running`` concurrent jobs, ``queued`` waiting; beyond that :meth:`try_enter` is False."""

    def __init__(self, running: int, queued: int) -> None:
        self.capacity = running + queued
        self.inside = 0
        self.sem = asyncio.Semaphore(running)

    def try_enter(self) -> bool:
        if self.inside >= self.capacity:
            return False
        self.inside += 1
        return True

    def leave(self) -> None:
        self.inside -= 1


def index_html() -> str:
    """The web page served at ``/`` (packaged as ``openfas/deploy/static/index.html``)."""
    return resources.files("openfas.deploy").joinpath("static/index.html").read_text(encoding="utf-8")


def create_app(predictor: Predictor, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application around one loaded ``predictor``."""
    settings = settings or ServeSettings()
    predictor.limits = settings.limits()
    pool = ThreadPoolExecutor(max_workers=settings.max_concurrency, thread_name_prefix="openfas-infer")
    page = index_html()
    state: dict[str, Any] = {"admission": None, "served": 0, "large": 0}

    app = FastAPI(title="openfas liveness", version=_version.__version__,
                  description="Face anti-spoofing (presentation attack detection). Scores: higher = more live; "
                              "`live` = score ≥ the model's threshold.",
                  docs_url="/docs" if settings.docs else None, redoc_url=None)

    def admission() -> _Admission:
        if state["admission"] is None:  # created inside the running event loop
            state["admission"] = _Admission(settings.max_concurrency, settings.max_queue)
        return state["admission"]

    @app.exception_handler(ImageInputError)
    async def _bad_image(_: Request, err: ImageInputError) -> JSONResponse:
        return JSONResponse({"error": {"code": err.code, "message": str(err)}}, status_code=err.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        # the framework's own refusals (unparsable multipart body, too many fields, unknown path) in the same
        # {"error": …} shape as every other answer, never its {"detail": …}
        code = _HTTP_CODES.get(err.status_code, "http_error")
        message = f"the multipart body could not be parsed ({err.detail})" if err.status_code == 400 else \
            str(err.detail)
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", ())) for e in err.errors())
        return JSONResponse({"error": {"code": "bad_request",
                                       "message": f"expected a multipart upload with a file field 'image' "
                                                  f"(problem with: {fields})"}}, status_code=400)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness of the service itself and what model it serves."""
        adm = admission()
        return {"status": "ok", **predictor.info(), "in_flight": adm.inside, "served": state["served"],
                "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_side": settings.max_side,
                           "max_pixels": settings.max_pixels, "max_concurrency": settings.max_concurrency,
                           "max_queue": settings.max_queue}}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home() -> HTMLResponse:
        return HTMLResponse(page)

    def _in_time(deadline: float, stage: str) -> None:
        if time.monotonic() > deadline:
            raise ImageInputError(f"upload: scoring the image took longer than {settings.work_timeout_s:g} s "
                                  f"(stopped after {stage})", 503, "timeout")

    def _work(data: bytes, include_map: bool) -> dict[str, Any]:
        t0 = time.perf_counter()
        deadline = time.monotonic() + settings.work_timeout_s
        bgr = decode_image_bytes(data, predictor.limits, "upload")
        _in_time(deadline, "decoding")
        boxes = predictor.detect(bgr)
        _in_time(deadline, "face detection")
        result = predictor.predict_bgr(bgr, boxes).to_dict(include_map)
        result["model"] = predictor.model_name
        result["model_file"] = dict(predictor.identity)  # name, version and SHA-256 of the model that scored
        result["elapsed_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        return result

    @app.post("/v1/liveness")
    async def liveness(image: UploadFile = File(..., description="JPEG/PNG/BMP/TIFF/WebP image"),
                       include_map: bool | None = None) -> JSONResponse:
        """Detect every face in the uploaded image and score it (higher = more live).

        ``include_map`` (default: the server's setting) adds each face's predicted map (list of rows)."""
        data = await image.read(settings.max_upload_bytes + 1)
        await image.close()
        if not data:
            raise ImageInputError("upload: empty file (0 bytes)", 400, "empty_file")
        if len(data) > settings.max_upload_bytes:
            raise ImageInputError(f"upload: file exceeds {settings.max_upload_bytes} bytes", 413, "file_too_large")
        _, width, height, _ = check_image_bytes(data, predictor.limits, "upload")  # before a slot
        large = width * height > settings.large_pixels
        if large and state["large"]:  # one decode-heavy image at a time, so they never take every worker
            return JSONResponse({"error": {"code": "busy", "message": f"another image over {settings.large_pixels} "
                                           "pixels is being scored; retry shortly"}}, status_code=503,
                                headers={"Retry-After": "1"})
        adm = admission()
        if not adm.try_enter():
            return JSONResponse({"error": {"code": "busy", "message": "the service is at capacity "
                                           f"({settings.max_concurrency} running + {settings.max_queue} queued); "
                                           "retry shortly"}}, status_code=503, headers={"Retry-After": "1"})
        state["large"] += large
        try:
            await adm.sem.acquire()
        except BaseException:
            adm.leave()
            state["large"] -= large
            raise

        def finished(fut: asyncio.Future) -> None:  # the slot is held until the worker is free again
            adm.sem.release()
            adm.leave()
            state["large"] -= large
            if not fut.cancelled():
                fut.exception()  # retrieved: a late failure after a timeout answer is not logged as unhandled

        want_map = settings.return_map if include_map is None else include_map
        fut = asyncio.get_running_loop().run_in_executor(pool, _work, data, want_map)
        fut.add_done_callback(finished)
        try:
            result = await asyncio.wait_for(asyncio.shield(fut), settings.work_timeout_s + 1.0)
        except asyncio.TimeoutError:
            raise ImageInputError(f"upload: scoring the image took longer than {settings.work_timeout_s:g} s",
                                  503, "timeout") from None
        state["served"] += 1
        return JSONResponse(result)

    app.add_middleware(_BodyLimit, limit=settings.max_upload_bytes + _MULTIPART_OVERHEAD,
                       timeout_s=settings.body_timeout_s)
    app.add_middleware(_SecurityHeaders, page_csp=page_csp(page),
                       exempt=("/docs", "/docs/oauth2-redirect") if settings.docs else ())
    app.state.predictor = predictor
    app.state.settings = settings
    app.state.pool = pool
    return app


def header_timeout_protocol(timeout_s: float) -> type:
    """uvicorn's h11 protocol with a deadline on each request's headers: a connection that has not completed a
    request's headers ``timeout_s`` seconds after it opened (or after the previous response) is closed, however
    slowly it keeps sending (uvicorn itself waits for headers forever)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeaderTimeoutH11Protocol(H11Protocol):
        header_timeout_s = timeout_s

        def _arm_header_timer(self) -> None:
            cycle = self.cycle
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow, cycle)

        def _headers_too_slow(self, cycle: Any) -> None:
            if self.cycle is cycle and not self.transport.is_closing():  # no new request since the timer started
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            timer = getattr(self, "_header_timer", None)
            if timer is not None:
                timer.cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()

    return HeaderTimeoutH11Protocol


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None,
          log_level: str = "info") -> None:
    """Run the service with uvicorn (blocks)."""
    import uvicorn

    settings = settings or ServeSettings()
    uvicorn.run(create_app(predictor, settings), host=host, port=port, log_level=log_level, server_header=False,
                http=header_timeout_protocol(settings.header_timeout_s), timeout_keep_alive=5)


__all__ = ["ServeSettings", "create_app", "header_timeout_protocol", "index_html", "page_csp", "serve"]
