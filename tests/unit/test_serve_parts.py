"""The service's pieces that need no running service: the image conversion the CLI's grids use, the batch
split across a checkpoint swap, and the parsing of request fields."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import save_image

from vaegan_dist.serve.face_model import FaceModel, RequestError, to_uint8
from vaegan_dist.serve.http import parse_attr
from vaegan_dist.serve.model_server import _per_model, parse_scales, png


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
