"""The service's pieces that need no running service: the image conversion the CLI's grids use, the batch
split across a checkpoint swap, and the parsing of request fields."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import save_image

from vaegan_dist.serve.face_model import FaceModel, to_uint8
from vaegan_dist.serve.model_server import _per_model, png
from vaegan_dist.serve.requests import RequestError, parse_attr, parse_scales


def test_to_uint8_is_what_the_grids_write():
    x = torch.randn(2, 3, 5, 5) * 1.5  # beyond [-1, 1] too: clamped as the grids clamp
    buffer = io.BytesIO()
    save_image(((x.clamp(-1, 1) + 1) / 2)[0], buffer, format="png")  # torchvision, as write_grid reaches it
    expected = np.asarray(Image.open(buffer))
    assert np.array_equal(to_uint8(x)[0].permute(1, 2, 0).numpy(), expected)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png(to_uint8(x)[:1])))), expected)


def test_a_batch_is_split_back_per_item_and_per_model():
    class Fake:
        def __init__(self, offset):
            self.offset = offset

        def run(self, parts):
            return torch.cat(parts) + self.offset

    old, new = Fake(0), Fake(100)
    items = [(old, torch.zeros(2, 1)), (new, torch.ones(1, 1)), (old, torch.full((3, 1), 2.0))]
    out = _per_model(items, lambda face, parts: face.run(parts))
    assert [t.squeeze(1).tolist() for t in out] == [[0, 0], [101], [2, 2, 2]]


def test_request_fields():
    assert parse_attr(["Eyeglasses:1", "Male:0"]) == {"Eyeglasses": 1, "Male": 0}
    for bad in (["Eyeglasses"], ["Eyeglasses:2"], [":1"], ["A:1", "A:0"]):
        with pytest.raises(RequestError, match="^attr: "):
            parse_attr(bad)
    assert parse_scales('{"Smiling": -1}') == {"Smiling": -1}
    for bad, message in (("Smiling=1", "not JSON"), ("[1]", "non-empty JSON object"), ("{}", "non-empty")):
        with pytest.raises(RequestError, match=message):
            parse_scales(bad)


def test_an_unreadable_upload_is_refused_in_our_words_and_a_large_png_before_it_is_decoded():
    """No Python object reprs in what a client reads (PIL's text named `<_io.BytesIO object at 0x...>`)."""
    from vaegan_dist.data.manifest import DataError
    from vaegan_dist.data.user_images import MAX_UPLOAD_PIXELS, load_user_image_bytes

    out = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(out, format="png")
    for data, reason in ((b"not an image at all", "its bytes are not an image of a known format"),
                         (out.getvalue()[:60], "")):
        with pytest.raises(DataError, match=f"^image: not a readable jpg, png or webp image \\({reason}") as err:
            load_user_image_bytes(data, 32, "image")
        assert "0x" not in str(err.value) and "BytesIO" not in str(err.value)
    big = io.BytesIO()
    side = int(MAX_UPLOAD_PIXELS**0.5) + 1
    Image.new("RGB", (side, side)).save(big, format="png", compress_level=1)
    with pytest.raises(DataError, match="megapixel limit"):
        load_user_image_bytes(big.getvalue(), 32, "image")


def test_a_refused_request_is_returned_and_logged_as_one_info_line(caplog):
    """The model deployment's endpoints return a RequestError as a Refusal: raised, Serve would log it at ERROR
    with its traceback; anything else still raises."""
    import asyncio
    import logging

    from vaegan_dist.serve.model_server import refusing
    from vaegan_dist.serve.requests import Refusal

    @refusing
    async def edit(field):
        if field == "broken":
            raise RuntimeError("a bug")
        raise RequestError(f"{field}: not a readable image")

    with caplog.at_level(logging.INFO, logger="vaegan_dist.serve"):
        assert asyncio.run(edit("image")) == Refusal("image: not a readable image")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "refused edit: image: not a readable image")]
    with pytest.raises(RuntimeError, match="a bug"):
        asyncio.run(edit("broken"))


def test_a_path_runs_from_one_code_to_the_other():
    a, b = torch.tensor([0.0, 2.0]), torch.tensor([4.0, -2.0])
    path = FaceModel.path(a, b, 5)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b) and torch.allclose(path[2], (a + b) / 2)


@pytest.mark.parametrize("args, message", [
    ({}, "checkpoint=RUN is required"),
    ({"checkpoint": "run", "replicas": "abc"}, "replicas='abc': expected a whole number from 1 to 64"),
    ({"checkpoint": "run", "replicas": "0"}, "replicas='0': expected a whole number from 1 to 64"),
    ({"checkpoint": "run", "vector_images": "1e9"}, "vector_images='1e9': expected a whole number"),
    ({"checkpoint": "run", "batching": "maybe"}, "batching='maybe': expected true or false"),
    ({"checkpoint": "run", "autoscale": "4-2"}, "--autoscale '4-2'"),
    ({"checkpoint": "run", "shards": "x"}, "shards: not an argument"),
])
def test_the_application_builder_names_the_argument_at_fault(args, message):
    from vaegan_dist.errors import ConfigError
    from vaegan_dist.serve.app import app

    with pytest.raises(ConfigError) as caught:
        app(args)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_application_builder_carries_its_arguments_to_the_model():
    from vaegan_dist.serve.app import app

    built = app({"checkpoint": "run", "replicas": "3", "batching": "false", "vector_images": "500"})
    (model,) = built._bound_deployment.init_args  # the ingress is bound to the model deployment
    assert model._bound_deployment.user_config == {"checkpoint": "run", "data": None, "vector_images": 500,
                                                   "batching": False}
    assert model._bound_deployment.num_replicas == 3


GOOD = {"checkpoint": "run", "data": None, "vector_images": 500, "batching": False}


@pytest.mark.parametrize("change, message", [
    ({"batching": "false"}, "user_config.batching: 'false' is not true or false"),
    ({"vector_images": "abc"}, "user_config.vector_images: 'abc' is not a whole number"),
    ({"vector_images": 1}, "user_config.vector_images: '1' is not a whole number"),
    ({"vector_images": True}, "user_config.vector_images: 'True'"),
    ({"checkpoint": 7}, "user_config.checkpoint: not set"),
    ({"checkpoint": ""}, "user_config.checkpoint: not set"),
    ({"data": ["a"]}, "user_config.data: \"['a']\" is not a path"),
    ({"batchng": False}, "user_config.batchng: not a key of the model deployment"),
])
def test_a_user_config_is_checked_key_by_key(change, message):
    from vaegan_dist.serve.model_server import checked_user_config

    assert checked_user_config(GOOD) == ({"checkpoint": "run", "data": None, "vector_images": 500}, False)
    with pytest.raises(ValueError) as caught:
        checked_user_config({**GOOD, **change})
    assert str(caught.value).startswith(message)


def test_a_replica_keeps_its_model_and_settings_through_a_bad_swap_and_forgets_the_failure_on_rollback(monkeypatch):
    from vaegan_dist.serve import model_server

    loads: list[str] = []

    class Loaded:
        def __init__(self, checkpoint: str):
            self.checkpoint = checkpoint

    def load(checkpoint, **_):
        loads.append(checkpoint)
        if checkpoint == "broken":
            raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
        return Loaded(checkpoint)

    monkeypatch.setattr(model_server.FaceModel, "load", staticmethod(load))
    server = model_server.ModelServer.func_or_class()
    with pytest.raises(ValueError, match="user_config.batching"):  # a new replica has nothing to keep
        server.reconfigure({**GOOD, "batching": "no"})
    server.reconfigure(GOOD)
    assert server.face.checkpoint == "run" and server.batching is False and server.failed == ""
    server.reconfigure({**GOOD, "checkpoint": "broken", "batching": True})
    assert server.face.checkpoint == "run" and server.batching is False
    assert server.failed == "broken: no such checkpoint"
    server.reconfigure({**GOOD, "vector_images": "many"})
    assert server.failed.startswith("user_config.vector_images") and server.face.checkpoint == "run"
    server.reconfigure(GOOD)  # the old config again: nothing to load, and nothing failed any more
    assert server.failed == "" and loads == ["run", "broken"]
    server.reconfigure({**GOOD, "batching": True})  # the switch alone: no reload
    assert server.batching is True and loads == ["run", "broken"]


def _asgi_call(headers: list[tuple[str, str]], path: str = "/nope") -> tuple[int, dict]:
    """One request through the FastAPI app as the Serve proxy hands it over (no HTTP client, no server)."""
    import asyncio
    import json

    from vaegan_dist.serve.http import app

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_only_the_hosts_the_service_was_started_for_and_bounded_headers(monkeypatch):
    """DNS rebinding: a page on evil.example resolves its own name to this address and sends Host: evil.example."""
    from ray.serve.exceptions import RayServeException

    from vaegan_dist.serve import http

    assert http.host_name("LocalHost:8000") == "localhost" and http.host_name("[::1]:8000") == "[::1]"
    from starlette.datastructures import State

    monkeypatch.setattr(http.app, "state", State({"allowed_hosts": ("localhost", "127.0.0.1", "[::1]", "faces.lab")}))
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000", "FACES.lab:80"):
        assert _asgi_call([("host", host)])[0] == 404, host  # past the check, to the router: no such route
    status, body = _asgi_call([("host", "evil.example:8000")])
    assert status == 400 and body == {"error": "Host: 'evil.example' is not a name this service answers to "
                                                "(vaegan-dist serve --allow-host NAME adds one)"}
    assert _asgi_call([])[0] == 400  # no Host header at all
    status, body = _asgi_call([("host", "localhost"), ("x-big", "a" * (http.MAX_HEADER_BYTES + 1))])
    assert status == 431 and "headers are" in body["error"]
    try:  # a load balancer's probe names an IP: /healthz is not held to the names
        probe = _asgi_call([("host", "10.1.2.3:8000")], path="/healthz")[0]
    except RayServeException as err:  # the route itself ran, which needs a Serve replica: the check let it through
        probe = str(err)
    assert probe != 400
    http.app.state.allowed_hosts = ("*",)
    assert _asgi_call([("host", "anything.example")])[0] == 404


def test_a_repeated_file_field_is_refused_not_silently_dropped():
    import asyncio

    from starlette.datastructures import FormData

    from vaegan_dist.serve.http import one_of_each

    class Sent:
        def __init__(self, *items):
            self.items = items

        async def form(self):
            return FormData(list(self.items))

    asyncio.run(one_of_each(Sent(("image", "a"), ("scales", "{}")), "image", "scales"))
    with pytest.raises(RequestError, match="^image: given 2 times; send one$"):
        asyncio.run(one_of_each(Sent(("image", "a"), ("image", "b")), "image"))


def test_the_http_deployment_takes_its_host_names_from_its_user_config():
    from types import SimpleNamespace

    from vaegan_dist.serve import http
    from vaegan_dist.serve.app import ServeSettings

    replica = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace()))  # its __init__ needs Serve
    reconfigure = http.Ingress.func_or_class.reconfigure
    reconfigure(replica, ServeSettings(checkpoint="x", allowed_hosts=("localhost", "Faces.Lab")).ingress_config())
    assert replica.app.state.allowed_hosts == ("localhost", "faces.lab")
    for bad in ({}, {"allowed_hosts": []}, {"allowed_hosts": "faces.lab"}, {"allowed_hosts": [""]}):
        with pytest.raises(ValueError, match="user_config.allowed_hosts"):
            reconfigure(replica, bad)


def test_a_taken_port_and_an_exposed_host_are_said_before_ray_starts():
    import socket

    from vaegan_dist.config import ConfigError
    from vaegan_dist.serve.run import check_port_free, exposure_note

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"^--port {port}: cannot listen on 127.0.0.1:{port} .*choose another"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # free again
    assert exposure_note("127.0.0.1", ("localhost",)) == ""
    note = exposure_note("0.0.0.0", ("localhost", "faces.lab"))
    assert "without authentication" in note and "faces.lab" in note


def test_allowed_host_names_are_checked_on_the_command_line_and_named_as_a_host_header_does():
    import argparse

    from vaegan_dist.cli.arguments import host_name
    from vaegan_dist.serve.run import exposure_note, host_header_name

    assert [host_name(t) for t in ("Faces.Lab", "10.0.0.7", "::1", "[fe80::1]", "*")] == [
        "faces.lab", "10.0.0.7", "::1", "fe80::1", "*"]
    for bad in ("faces.lab:8080", "", "a b", "x/y", "10.0.0.1:80"):
        with pytest.raises(argparse.ArgumentTypeError, match="not a host name or IP address without a port"):
            host_name(bad)
    assert host_header_name("::1") == "[::1]" and host_header_name("FACES.lab") == "faces.lab"
    assert "no protection against DNS rebinding" in exposure_note("0.0.0.0", ("localhost", "*"))


def test_a_refusal_is_one_line_whatever_the_client_sent():
    import json

    from vaegan_dist.serve.http import refuse

    body = json.loads(refuse(400, "scales.a\nFAKE LOG LINE\r: not a number").body)
    assert body == {"error": "scales.a FAKE LOG LINE : not a number"}
