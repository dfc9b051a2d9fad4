"""`vaegan-dist serve`: a real Ray Serve application on loopback, started and shut down here. Each endpoint's
images are checked against the CLI's own output for the same inputs; every bad input is a 4xx naming the
field, and the service keeps serving; a checkpoint swap under load drops no request."""

from __future__ import annotations

import io
import json
import shutil
import socket
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from PIL import Image

from tests.conftest import kill_processes_naming, tiny_config
from vaegan_dist.cli.main import main
from vaegan_dist.errors import ConfigError
from vaegan_dist.model import load_model

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.ray]
PAD = 2  # the grids' padding
VECTOR_IMAGES = 64
QUIET = {"log_level": "WARNING", "enable_access_log": False}  # the replicas' request lines would fill CI's log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_bytes(seed: int, size=(90, 70), fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(out, format=fmt)
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def cell(grid: np.ndarray, row: int, col: int, side: int = 32) -> np.ndarray:
    top, left = PAD + row * (side + PAD), PAD + col * (side + PAD)
    return grid[top:top + side, left:left + side]


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to one level of 255: the same network on another batch size may differ in its last float bits."""
    return a.shape == b.shape and int(np.abs(a - b).max()) <= 1 and float(np.abs(a - b).mean()) < 0.01


@pytest.fixture(scope="module")
def trained(faces32, tmp_path_factory):
    from vaegan_dist.train.launcher import launch

    root = tmp_path_factory.mktemp("serve-runs")
    return launch(tiny_config(faces32, root, "served", "train.steps=30", "train.checkpoint_every=15"))


@pytest.fixture(scope="module")
def service(trained, faces32):
    import ray
    from ray import serve

    from vaegan_dist.serve.app import ServeSettings, build
    from vaegan_dist.serve.run import APP_NAME

    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, _temp_dir=str(ray_tmp))
    settings = ServeSettings(checkpoint=str(trained), data=str(faces32), vector_images=VECTOR_IMAGES,
                             allowed_hosts=("localhost", "127.0.0.1", "[::1]", "faces.test"))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build(settings), name=APP_NAME, route_prefix="/", logging_config=QUIET)
        yield {"url": f"http://127.0.0.1:{port}"}
    finally:
        serve.shutdown()
        ray.shutdown()
        kill_processes_naming(str(ray_tmp))
        shutil.rmtree(ray_tmp, ignore_errors=True)


def post(service, path: str, files: dict, data: dict | None = None) -> requests.Response:
    return requests.post(service["url"] + path, files=files, data=data or {}, timeout=60)


def test_a_name_given_to_the_http_deployment_is_served_and_another_is_not(service):
    """The allowed names travel in the http deployment's user_config to the app the replica serves (a fallback to
    the local names would refuse faces.test too)."""
    named = requests.get(service["url"] + "/info", headers={"Host": "faces.test:8000"}, timeout=30)
    assert named.status_code == 200 and "step" in named.json()
    assert requests.get(service["url"] + "/info", headers={"Host": "other.test"}, timeout=30).status_code == 400


def test_info_and_health(service, trained):
    assert requests.get(service["url"] + "/healthz", timeout=30).json() == {"status": "ok"}
    info = requests.get(service["url"] + "/info", timeout=30).json()
    model, cfg, step = load_model(trained)
    assert (info["model_kind"], info["step"], info["image_size"], info["latent_dim"]) == (
        model.kind, step, cfg.data.image_size, model.latent_dim)
    assert info["can_edit"] and "Eyeglasses" in info["attributes"] and info["checkpoint"].endswith("state.pt")


def test_sample_equals_the_cli(service, trained, tmp_path, capsys):
    got = requests.get(service["url"] + "/sample", params={"n": 16, "seed": 3}, timeout=60)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert main(["sample", "--checkpoint", str(trained), "--n", "16", "--seed", "3", "--out",
                 str(tmp_path / "s.png")]) == 0
    assert close(pixels(got.content), pixels((tmp_path / "s.png").read_bytes()))


def test_reconstruct_and_edit_equal_the_cli(service, trained, tmp_path, capsys):
    photo = tmp_path / "me.png"
    photo.write_bytes(photo_bytes(1))
    assert main(["edit", "--checkpoint", str(trained), "--attribute", "Eyeglasses", "--scale", "1.5", "--image",
                 str(photo), "--vector-images", str(VECTOR_IMAGES), "--out", str(tmp_path / "e.png")]) == 0
    grid = pixels((tmp_path / "e.png").read_bytes())  # columns: original, reconstruction, +1.5
    assert main(["reconstruct", "--checkpoint", str(trained), "--image", str(photo), "--out",
                 str(tmp_path / "r.png")]) == 0
    reconstructed = pixels((tmp_path / "r.png").read_bytes())  # original, then its reconstruction
    recon = post(service, "/reconstruct", {"image": ("me.png", photo.read_bytes(), "image/png")})
    assert recon.status_code == 200, recon.text
    assert close(pixels(recon.content), cell(reconstructed, 0, 1)) and close(pixels(recon.content), cell(grid, 0, 1))
    assert not close(cell(reconstructed, 0, 0), cell(reconstructed, 0, 1))  # not the photo itself
    edited = post(service, "/edit", {"image": ("me.png", photo.read_bytes(), "image/png")},
                  {"scales": json.dumps({"Eyeglasses": 1.5})})
    assert edited.status_code == 200, edited.text
    assert close(pixels(edited.content), cell(grid, 0, 2))
    assert not np.array_equal(pixels(edited.content), pixels(recon.content))  # the vector moved the face


def test_interpolate_runs_from_one_reconstruction_to_the_other(service):
    a, b = photo_bytes(2), photo_bytes(3, fmt="JPEG")
    strip = post(service, "/interpolate", {"image_a": ("a.png", a, "image/png"), "image_b": ("b.jpg", b, "image/jpeg")},
                 {"steps": "5"})
    assert strip.status_code == 200, strip.text
    strip_pixels = pixels(strip.content)
    assert strip_pixels.shape == (32 + 2 * PAD, 5 * (32 + PAD) + PAD, 3)
    for index, data, name in ((0, a, "a.png"), (4, b, "b.jpg")):
        recon = post(service, "/reconstruct", {"image": (name, data, "image/png" if index == 0 else "image/jpeg")})
        assert close(cell(strip_pixels, 0, index), pixels(recon.content))


def bomb() -> bytes:
    """A PNG whose header claims 20000 x 20000 RGB pixels (1.2 GB decoded) in a few dozen bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


@pytest.mark.parametrize("case, status, field", [
    ("not an image", 400, "image"), ("empty", 400, "image: the upload is empty"),
    ("wrong content type", 415, "image: content type 'text/plain'"), ("too large", 413, ""),
    ("bomb", 400, "image"), ("unknown attribute", 400, "scales.Wings"), ("not finite", 400, "scales.Smiling"),
    ("scales not json", 400, "scales: not JSON"), ("n too large", 422, "n:"), ("n not a number", 422, "n:"),
    ("attr on an unconditioned model", 400, "attr"), ("steps", 422, "steps:"),
    ("scale too large for a float", 400, "scales.Smiling"), ("scales nested too deeply", 400, "scales: not JSON"),
    ("no such endpoint", 404, "/nope: Not Found"), ("wrong method", 405, "/edit: Method Not Allowed"),
    ("two images", 400, "image: given 2 times"), ("image as a plain field", 422, "image: expected a file"),
    ("another site's name", 400, "Host: 'evil.example'"), ("huge header", 431, "headers are"),
    ("truncated image", 400, "image: not a readable"),
])
def test_bad_input_is_a_4xx_naming_the_field_and_the_service_goes_on(service, case, status, field):
    good = ("me.png", photo_bytes(4), "image/png")
    calls = {
        "not an image": lambda: post(service, "/reconstruct", {"image": ("x.png", b"hello, not a png", "image/png")}),
        "empty": lambda: post(service, "/reconstruct", {"image": ("x.png", b"", "image/png")}),
        "wrong content type": lambda: post(service, "/reconstruct", {"image": ("x.txt", good[1], "text/plain")}),
        "too large": lambda: post(service, "/reconstruct", {"image": ("x.png", b"\0" * (11 << 20), "image/png")}),
        "bomb": lambda: post(service, "/reconstruct", {"image": ("bomb.png", bomb(), "image/png")}),
        "unknown attribute": lambda: post(service, "/edit", {"image": good}, {"scales": '{"Wings": 1}'}),
        "not finite": lambda: post(service, "/edit", {"image": good}, {"scales": '{"Smiling": NaN}'}),
        "scales not json": lambda: post(service, "/edit", {"image": good}, {"scales": "Smiling=1"}),
        "n too large": lambda: requests.get(service["url"] + "/sample?n=65", timeout=30),
        "n not a number": lambda: requests.get(service["url"] + "/sample?n=many", timeout=30),
        "attr on an unconditioned model": lambda: requests.get(service["url"] + "/sample?attr=Eyeglasses:1",
                                                               timeout=30),
        "steps": lambda: post(service, "/interpolate", {"image_a": good, "image_b": good}, {"steps": "1"}),
        "scale too large for a float": lambda: post(service, "/edit", {"image": good},
                                                    {"scales": '{"Smiling": 1' + "0" * 400 + "}"}),
        "scales nested too deeply": lambda: post(service, "/edit", {"image": good},
                                                 {"scales": '{"a": ' + "[" * 2000 + "]" * 2000 + "}"}),
        "no such endpoint": lambda: requests.get(service["url"] + "/nope", timeout=30),
        "wrong method": lambda: requests.get(service["url"] + "/edit", timeout=30),
        "two images": lambda: requests.post(service["url"] + "/reconstruct", files=[("image", good), ("image", good)],
                                            timeout=60),
        "image as a plain field": lambda: post(service, "/reconstruct", {}, {"image": "not a file"}),
        "another site's name": lambda: requests.get(service["url"] + "/info", headers={"Host": "evil.example"},
                                                    timeout=30),
        "huge header": lambda: requests.get(service["url"] + "/info", headers={"X-Big": "a" * 40_000}, timeout=30),
        "truncated image": lambda: post(service, "/reconstruct", {"image": ("x.png", good[1][:80], "image/png")}),
    }
    response = calls[case]()
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and field in body["error"] and "Traceback" not in body["error"], body
    assert "\n" not in body["error"] and " at 0x" not in body["error"] and "<class" not in body["error"]
    assert requests.get(service["url"] + "/healthz", timeout=30).status_code == 200


def test_the_page_is_self_contained_with_a_strict_policy(service):
    page = requests.get(service["url"] + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy and "script-src 'sha256-" in policy
    assert "http://" not in page.text and "https://" not in page.text and "<script src" not in page.text


def test_in_chromium_upload_a_photo_move_a_slider_and_the_face_changes(service, tmp_path):
    from tests.browser import Browser

    photo = tmp_path / "me.png"
    photo.write_bytes(photo_bytes(6))
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(service["url"] + "/")
        browser.wait_for("document.body && document.body.dataset.ready === 'true'")  # the hashed script ran
        assert browser.evaluate("document.querySelectorAll('#sliders input[type=range]').length") > 3
        browser.set_files("#photo", photo)
        browser.evaluate("document.getElementById('photo').dispatchEvent(new Event('change'))")
        browser.wait_for("document.getElementById('reconstruction').naturalWidth === 32")
        before = browser.evaluate("document.getElementById('edited').dataset.version || '0'")
        browser.evaluate("""(() => { const s = document.querySelector('#sliders input[data-attribute=Eyeglasses]');
            s.value = '2'; s.dispatchEvent(new Event('input')); })()""")
        browser.wait_for(f"(document.getElementById('edited').dataset.version || '0') !== '{before}' && "
                         "document.getElementById('edited').naturalWidth === 32")
        # The edited face differs from the reconstruction, pixel by pixel, as the browser decoded both.
        changed = browser.evaluate("""(() => {
            const pixels = id => { const img = document.getElementById(id), c = document.createElement('canvas');
              c.width = img.naturalWidth; c.height = img.naturalHeight; const g = c.getContext('2d');
              g.drawImage(img, 0, 0); return g.getImageData(0, 0, c.width, c.height).data; };
            const a = pixels('reconstruction'), b = pixels('edited'); let d = 0;
            for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]); return d; })()""")
        assert changed > 0
        assert browser.evaluate("document.getElementById('error').textContent") == ""
    finally:
        browser.close()


def test_cli_refusals_and_the_config_file(trained, faces32, tmp_path, capsys):
    assert main(["serve", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "nope: no such checkpoint" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(trained), "--autoscale", "4-2"]) == 2
    assert "--autoscale '4-2'" in capsys.readouterr().err
    out = tmp_path / "serve.yaml"
    assert main(["serve", "--checkpoint", str(trained), "--data", str(faces32), "--autoscale", "1-3",
                 "--write-config", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    (application,) = config["applications"]
    assert application["import_path"] == "vaegan_dist.serve.app:template"
    model, ingress = application["deployments"]
    assert model["autoscaling_config"]["max_replicas"] == 3 and model["num_replicas"] == "auto"
    assert model["user_config"]["checkpoint"].endswith("state.pt") and model["user_config"]["batching"] is True
    assert ingress == {"name": "http", "user_config": {"allowed_hosts": ["localhost", "127.0.0.1", "[::1]"]}}
    assert config["http_options"] == {"host": "127.0.0.1", "port": 8000, "request_timeout_s": 120.0}
    # A config file for a cluster names the data as the cluster's nodes see it: not opened here
    assert main(["serve", "--checkpoint", str(trained), "--data", "/cluster/only/shards", "--write-config",
                 str(out)]) == 0
    assert yaml.safe_load(out.read_text())["applications"][0]["deployments"][0]["user_config"]["data"] == \
        "/cluster/only/shards"
    # Checked before Ray starts, one line each (a missing data set took 47 s and 237 lines; a taken port 26 s)
    started = time.monotonic()
    assert main(["serve", "--checkpoint", str(trained), "--data", str(tmp_path / "no-data")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no-data" in err and len(err.splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(trained), "--data", str(faces32), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--port {port}: cannot listen" in err and len(err.splitlines()) == 1
    assert time.monotonic() - started < 20
    with pytest.raises(SystemExit) as exit_:  # argparse's own refusal: exit code 2
        main(["serve", "--checkpoint", str(trained), "--name", "../x"])
    assert exit_.value.code == 2 and "argument --name: '../x' is not a name" in capsys.readouterr().err
    from vaegan_dist.serve.app import app

    with pytest.raises(ConfigError, match="shards: not an argument"):
        app({"checkpoint": str(trained), "shards": "x"})


def test_a_config_file_deployed_again_swaps_the_checkpoint_under_load_and_a_broken_one_leaves_the_old(
        service, trained, faces32, tmp_path):
    """The file `--write-config` writes, deployed as `serve deploy` deploys it (the controller's apply_config,
    which the dashboard's REST API calls), then deployed again with a checkpoint that does not load and with an
    older one: requests keep succeeding throughout, the broken one is reported and the older one takes over.
    Last in this module: the service ends on another checkpoint."""
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from vaegan_dist.serve.run import APP_NAME

    out = tmp_path / "serve.yaml"
    assert main(["serve", "--checkpoint", str(trained), "--data", str(faces32), "--vector-images",
                 str(VECTOR_IMAGES), "--write-config", str(out)]) == 0
    config = yaml.safe_load(out.read_text())
    model, _ = config["applications"][0]["deployments"]  # and the HTTP deployment's allowed hosts

    def deploy(checkpoint: str) -> None:
        """Deploy the file with this checkpoint and wait until Serve has rolled it out."""
        before = serve.status().applications[APP_NAME].last_deployed_time_s
        model["user_config"]["checkpoint"] = checkpoint
        _get_global_client().deploy_apps(ServeDeploySchema.model_validate(config))
        deadline = time.monotonic() + 120
        while True:
            app = serve.status().applications[APP_NAME]
            if app.last_deployed_time_s > before and app.status == "RUNNING":
                return
            assert time.monotonic() < deadline, f"{checkpoint} never deployed: {app.status} {app.message[-2000:]}"
            time.sleep(0.5)

    def info() -> dict:
        return requests.get(service["url"] + "/info", timeout=30).json()

    deploy(model["user_config"]["checkpoint"])  # the file as written: the app becomes a config-file app
    assert info()["step"] == 30
    photo = ("me.png", photo_bytes(5), "image/png")
    results: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            results.append(post(service, "/reconstruct", {"image": photo}).status_code)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        deploy(str(tmp_path / "no-such-run"))
        failed = info()
        assert failed["last_swap_failed"].startswith(f"{tmp_path / 'no-such-run'}: no such checkpoint")
        assert failed["last_swap_failed"].count("no-such-run") == 1 and failed["step"] == 30
        served_before = len(results)
        deploy(str(trained / "checkpoint_00000015"))
        swapped = info()
        assert swapped["step"] == 15 and swapped["last_swap_failed"] is None
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert served_before > 3 and len(results) > served_before and set(results) == {200}, results[-20:]
