"""The HTTP ingress (FastAPI, Ray Serve's convention): reads and checks requests, calls the model deployment,
and answers PNG images or JSON. Every refusal is a 4xx with ``{"error": "<field>: <what is wrong>"}``, never a
traceback, and the service goes on serving; nothing from a request names a file on the server.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time, and
Serve's ingress class would leave them as unresolved strings.
"""

import logging
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from vaegan_dist.serve.face_model import RequestError
from vaegan_dist.serve.model_server import parse_scales
from vaegan_dist.serve.page import editor_page

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # one photo
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES + 64 * 1024  # two photos (interpolate) and the form's own bytes
MAX_SAMPLES = 64
MAX_STEPS = 16
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
PNG = "image/png"
logger = logging.getLogger("vaegan_dist.serve")

app = FastAPI(title="vaegan-dist", docs_url=None, redoc_url=None, openapi_url=None)


def refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@app.middleware("http")
async def bounded_body(request: Request, call_next):
    """A body is refused from its declared length before any of it is read (and a POST must declare it)."""
    if request.method == "POST":
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return refuse(411, "Content-Length: required (uploads are bounded)")
        if int(length) > MAX_BODY_BYTES:
            return refuse(413, f"the request is {int(length)} bytes, more than {MAX_BODY_BYTES}")
    return await call_next(request)


@app.exception_handler(StarletteHTTPException)
async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
    """404, 405, an unparsable multipart body: the same one-line JSON shape as every other refusal."""
    return refuse(err.status_code, f"{request.url.path[:100]}: {err.detail}")


@app.exception_handler(Exception)
async def internal_error(request: Request, err: Exception) -> JSONResponse:
    logger.exception("%s failed", request.url.path[:100])
    return refuse(500, f"{request.url.path[:100]}: failed inside the service; see the service's log")


@app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, err: RequestValidationError) -> JSONResponse:
    first = err.errors()[0] if err.errors() else {}
    field = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
    return refuse(422, f"{field}: {first.get('msg', 'invalid')}")


async def read_upload(upload: UploadFile, field: str) -> bytes:
    if upload.content_type not in IMAGE_TYPES:
        raise RequestError(f"{field}: content type {str(upload.content_type)[:60]!r} is not one of "
                           f"{', '.join(IMAGE_TYPES)}")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise _TooLarge(f"{field}: larger than {MAX_UPLOAD_BYTES >> 20} MB")
    return data


class _TooLarge(RequestError):
    pass


def parse_attr(items: list[str]) -> dict[str, int]:
    """``attr=Eyeglasses:1`` query items -> {name: 0 or 1}."""
    if len(items) > 64:
        raise RequestError(f"attr: {len(items)} settings; at most 64")
    settings: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or value.strip() not in ("0", "1") or not name:
            raise RequestError(f"attr: {item[:60]!r} is not NAME:0 or NAME:1")
        if name in settings:
            raise RequestError(f"attr: {name[:60]!r} given twice")
        settings[name] = int(value)
    return settings


# Serve's default admits 5 requests per replica at a time: the rest wait in the proxy, and the model
# deployment never sees enough at once to batch them (bench/serve_load.py: 47 -> 8 req/s from 8 to 32 clients).
@serve.deployment(name="http", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress(app)
class Ingress:
    def __init__(self, model: DeploymentHandle):
        self.model = model

    async def _call(self, method: str, *args: Any) -> Response:
        """Call the model deployment; its refusals become 4xx, anything else a 500 without internals."""
        try:
            result = await getattr(self.model, method).remote(*args)
        except RequestError as err:  # Ray re-raises the replica's exception as a subclass of its type
            original = getattr(err, "cause", None) or err  # without Ray's traceback text
            return refuse(413 if isinstance(err, _TooLarge) else 400, str(original))
        except Exception:  # noqa: BLE001 - logged here; the client learns only that it failed
            logger.exception("%s failed", method)
            return refuse(500, f"{method} failed inside the service; see the service's log")
        return Response(result, media_type=PNG) if isinstance(result, bytes) else JSONResponse(result)

    @app.get("/", response_class=HTMLResponse)
    async def page(self) -> HTMLResponse:
        html, csp = editor_page()
        return HTMLResponse(html, headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"})

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/info")
    async def info(self) -> Response:
        return await self._call("info")

    @app.get("/sample")
    async def sample(self, n: Annotated[int, Query(ge=1, le=MAX_SAMPLES)] = 16,
                     seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                     attr: Annotated[list[str] | None, Query()] = None) -> Response:
        try:
            settings = parse_attr(attr or [])
        except RequestError as err:
            return refuse(400, str(err))
        return await self._call("sample", n, seed, settings)

    @app.post("/reconstruct")
    async def reconstruct(self, image: Annotated[UploadFile, File()]) -> Response:
        try:
            data = await read_upload(image, "image")
        except RequestError as err:
            return refuse(413 if isinstance(err, _TooLarge) else 415, str(err))
        return await self._call("reconstruct", data)

    @app.post("/edit")
    async def edit(self, image: Annotated[UploadFile, File()],
                   scales: Annotated[str, Form(max_length=4096)]) -> Response:
        try:
            data = await read_upload(image, "image")
        except RequestError as err:
            return refuse(413 if isinstance(err, _TooLarge) else 415, str(err))
        try:
            parsed = parse_scales(scales)
        except RequestError as err:
            return refuse(400, str(err))
        return await self._call("edit", data, parsed)

    @app.post("/interpolate")
    async def interpolate(self, image_a: Annotated[UploadFile, File()], image_b: Annotated[UploadFile, File()],
                          steps: Annotated[int, Form(ge=2, le=MAX_STEPS)] = 8) -> Response:
        try:
            first, second = await read_upload(image_a, "image_a"), await read_upload(image_b, "image_b")
        except RequestError as err:
            return refuse(413 if isinstance(err, _TooLarge) else 415, str(err))
        return await self._call("interpolate", first, second, steps)
