"""The README's screenshot of the face-editing page: serve a checkpoint, upload one of its data set's test
faces in headless Chromium, move two sliders, capture the page.

    python bench/serve_screenshot.py --checkpoint ~/vaegan-dist/runs/<smoke run> --out bench/figures/serve_page.png
"""

from __future__ import annotations

import argparse
import base64
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", default="bench/figures/serve_page.png")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--vector-images", type=int, default=2000)
    args = parser.parse_args()

    import ray
    from PIL import Image
    from ray import serve

    from tests.browser import Browser
    from vaegan_dist.data.sources import open_source
    from vaegan_dist.data.stream import first_images
    from vaegan_dist.model import load_model
    from vaegan_dist.serve.app import ServeSettings, build

    _, cfg, _ = load_model(args.checkpoint)
    images, _ = first_images(open_source(cfg.data.source, "test"), "test", 3)
    work = Path(tempfile.mkdtemp(prefix="shot"))
    photo = work / "face.png"
    Image.fromarray(images[2].permute(1, 2, 0).numpy()).resize((128, 128), Image.NEAREST).save(photo)
    ray.init(address="local", num_cpus=4, include_dashboard=False, _temp_dir=str(work / "ray"))
    browser = None
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(build(ServeSettings(checkpoint=args.checkpoint, vector_images=args.vector_images)), route_prefix="/")
        browser = Browser(work / "profile")
        browser.send("Emulation.setDeviceMetricsOverride", width=1000, height=1150, deviceScaleFactor=1, mobile=False)
        browser.open(f"http://127.0.0.1:{args.port}/")
        browser.wait_for("document.body && document.body.dataset.ready === 'true'")
        browser.set_files("#photo", photo)
        browser.evaluate("document.getElementById('photo').dispatchEvent(new Event('change'))")
        browser.wait_for("document.getElementById('reconstruction').naturalWidth > 0")
        browser.evaluate("""(() => { for (const [name, value] of [['Eyeglasses', '2'], ['Smiling', '1.5']]) {
            const s = document.querySelector(`#sliders input[data-attribute=${name}]`);
            if (s) { s.value = value; s.dispatchEvent(new Event('input')); } } })()""")
        browser.wait_for("Number(document.getElementById('edited').dataset.version || 0) >= 1")
        browser.evaluate("document.getElementById('sample').click()")
        browser.wait_for("document.getElementById('samples').naturalWidth > 0")
        time.sleep(1)
        shot = browser.send("Page.captureScreenshot", format="png")["data"]
        Path(args.out).write_bytes(base64.b64decode(shot))
        print(f"wrote {args.out}")
    finally:
        if browser is not None:
            browser.close()
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
