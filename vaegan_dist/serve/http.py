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

from vaegan_dist.serve.page import editor_page
from vaegan_dist.serve.requests import Refusal, RequestError, one_line, parse_attr, parse_scales

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # one photo
MAX_BODY_BYTES = 2 * MAX_UPLOAD_BYTES + 64 * 1024  # two photos (interpolate) and the form's own bytes
MAX_HEADER_BYTES = 32 * 1024  # all headers together
MAX_SAMPLES = 64
MAX_STEPS = 16
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
PNG = "image/png"
logger = logging.getLogger("vaegan_dist.serve")

app = FastAPI(title="vaegan-dist", docs_url=None, redoc_url=None, openapi_url=None)


def refuse(status: int, message: str) -> JSONResponse:
    """The one shape of every refusal: ``{"error": "<field>: ..."}``, on one line whatever a client sent."""
    return JSONResponse({"error": one_line(message)}, status_code=status)


LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")  # the names the Host header may give unless configured


def host_name(header: str) -> str:
    """``Host: name:port`` -> ``name`` (an IPv6 literal keeps its brackets), lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[:header.find("]") + 1] if "]" in header else header
    return header.partition(":")[0]


@app.middleware("http")
async def known_host_and_bounded_headers(request: Request, call_next):
    """Only the hosts the service was started for (a page on another site that rebinds its DNS name to this
    address sends its own name), and headers of a bounded size (the body limit does not cover them; a 64 MB
    header grew the proxy by 230 MB: the proxy's own HTTP server sets no limit, so put a reverse proxy with one in
    front of a service reachable from other machines)."""
    size = sum(len(name) + len(value) for name, value in request.scope.get("headers", ()))
    if size > MAX_HEADER_BYTES:
        return refuse(431, f"the request's headers are {size} bytes, more than {MAX_HEADER_BYTES}")
    name = host_name(request.headers.get("host", ""))
    allowed = getattr(request.app.state, "allowed_hosts", LOCAL_HOSTS)  # the replica's user_config sets them
    if "*" not in allowed and name not in allowed and request.url.path != "/healthz":  # probes name an IP
        return refuse(400, f"Host: {name[:60]!r} is not a name this service answers to (vaegan-dist serve "
                           "--allow-host NAME adds one)")
    return await call_next(request)


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
    message = str(first.get("msg", "invalid"))
    if "UploadFile" in message:  # FastAPI's words: "Expected UploadFile, received: <class 'str'>"
        message = "expected a file (a file part of a multipart/form-data body), got a plain field"
    return refuse(422, f"{field}: {message[:200]}")


async def one_of_each(request: Request, *fields: str) -> None:
    """FastAPI takes the last of a repeated file field without a word: a request that sends two is refused."""
    form = await request.form()  # parsed once already for the route's parameters: this is the same form
    for field in fields:
        if len(form.getlist(field)) > 1:
            raise RequestError(f"{field}: given {len(form.getlist(field))} times; send one")


async def read_upload(upload: UploadFile, field: str) -> bytes:
    if upload.content_type not in IMAGE_TYPES:
        raise _WrongType(f"{field}: content type {str(upload.content_type)[:60]!r} is not one of "
                           f"{', '.join(IMAGE_TYPES)}")
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise _TooLarge(f"{field}: larger than {MAX_UPLOAD_BYTES >> 20} MB")
    return data


class _TooLarge(RequestError):
    pass


class _WrongType(RequestError):
    pass


def status_of(err: RequestError) -> int:
    return 413 if isinstance(err, _TooLarge) else 415 if isinstance(err, _WrongType) else 400


# Serve's default admits 5 requests per replica at a time: the rest wait in the proxy, and the model
# deployment never sees enough at once to batch them (bench/serve_load.py: 47 -> 8 req/s from 8 to 32 clients).
@serve.deployment(name="http", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
@serve.ingress(app)
class Ingress:
    def __init__(self, model: DeploymentHandle):
        self.model = model

    def reconfigure(self, config: dict[str, Any]) -> None:
        """``{"allowed_hosts": [...]}``: the Host names this replica's app answers to (``*``: any). Kept on the app
        this replica serves (Serve's ``app`` property): Serve froze a copy of the module's app, so a module global
        set here would not be the one the middleware reads."""
        hosts = config.get("allowed_hosts") if isinstance(config, dict) else None
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h.strip() for h in hosts):
            raise ValueError(f"user_config.allowed_hosts: {str(hosts)[:80]!r} is not a non-empty list of host "
                             "names (* for any)")
        self.app.state.allowed_hosts = tuple(h.lower() for h in hosts)

    async def _call(self, method: str, *args: Any) -> Response:
        """Call the model deployment; its refusals become 4xx, anything else a 500 without internals."""
        try:
            result = await getattr(self.model, method).remote(*args)
        except RequestError as err:  # Ray re-raises the replica's exception as a subclass of its type
            original = getattr(err, "cause", None) or err  # without Ray's traceback text
            return refuse(status_of(err), str(original))
        except Exception:  # noqa: BLE001 - logged here; the client learns only that it failed
            logger.exception("%s failed", method)
            return refuse(500, f"{method} failed inside the service; see the service's log")
        if isinstance(result, Refusal):
            return refuse(400, result.message)
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
    async def reconstruct(self, request: Request, image: Annotated[UploadFile, File()]) -> Response:
        try:
            await one_of_each(request, "image")
            data = await read_upload(image, "image")
        except RequestError as err:
            return refuse(status_of(err), str(err))
        return await self._call("reconstruct", data)

    @app.post("/edit")
    async def edit(self, request: Request, image: Annotated[UploadFile, File()],
                   scales: Annotated[str, Form(max_length=4096)]) -> Response:
        try:
            await one_of_each(request, "image", "scales")
            data = await read_upload(image, "image")
        except RequestError as err:
            return refuse(status_of(err), str(err))
        try:
            parsed = parse_scales(scales)
        except RequestError as err:
            return refuse(400, str(err))
        return await self._call("edit", data, parsed)

    @app.post("/interpolate")
    async def interpolate(self, request: Request, image_a: Annotated[UploadFile, File()],
                          image_b: Annotated[UploadFile, File()],
                          steps: Annotated[int, Form(ge=2, le=MAX_STEPS)] = 8) -> Response:
        try:
            await one_of_each(request, "image_a", "image_b", "steps")
            first, second = await read_upload(image_a, "image_a"), await read_upload(image_b, "image_b")
        except RequestError as err:
            return refuse(status_of(err), str(err))
        return await self._call("interpolate", first, second, steps)
