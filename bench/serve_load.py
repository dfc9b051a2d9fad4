"""Load on `vaegan-dist serve`, batching on and off side by side: bounded concurrent clients on loopback.

    python bench/serve_load.py --checkpoint ~/vaegan-dist/runs/<smoke run> --seconds 30 --clients 8 32

Both applications run in one Serve instance (the batched one under /batched, the other under /unbatched,
each with one model replica), and each (endpoint, clients) cell is measured for both one after the other,
so that the machine's noise falls on both alike. Prints requests/s, p50 and p99 latency and errors per cell,
and the ratio of batched to unbatched requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (120, 100, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


async def load(url: str, endpoint: str, clients: int, seconds: float, attribute: str) -> dict:
    import aiohttp

    image = photo(0)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            form = aiohttp.FormData()
            form.add_field("image", image, filename="me.png", content_type="image/png")
            if endpoint == "edit":
                form.add_field("scales", json.dumps({attribute: 1.5}))
            started = time.monotonic()
            try:
                async with session.post(f"{url}/{endpoint}", data=form) as response:
                    await response.read()
                    ok = response.status == 200
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append(time.monotonic() - started)
            else:
                errors += 1

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=clients)) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.monotonic() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")  # noqa: E731
    return {"rps": len(latencies) / wall, "p50_ms": 1000 * pick(0.5), "p99_ms": 1000 * pick(0.99), "errors": errors,
            "requests": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--endpoints", nargs="+", default=["reconstruct", "edit"], choices=["reconstruct", "edit"])
    parser.add_argument("--vector-images", type=int, default=2000)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()

    import ray
    import requests
    from ray import serve

    from vaegan_dist.serve.app import ServeSettings, build

    ray_tmp = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    ray.init(address="local", num_cpus=max(4, os.cpu_count() or 2), include_dashboard=False, _temp_dir=ray_tmp)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        for name, batching in (("batched", True), ("unbatched", False)):
            settings = ServeSettings(checkpoint=args.checkpoint, data=args.data, vector_images=args.vector_images,
                                     batching=batching)
            serve.run(build(settings), name=name, route_prefix=f"/{name}")
        base = f"http://127.0.0.1:{args.port}"
        info = requests.get(f"{base}/batched/info", timeout=60).json()
        attribute = "Eyeglasses" if "Eyeglasses" in info["attributes"] else info["attributes"][0]
        print(f"{info['model_kind']} at step {info['step']}, {info['image_size']} px; {os.cpu_count()} CPUs; "
              f"{args.seconds:g} s per cell; edit: {attribute} +1.5")
        rows = []
        for endpoint in args.endpoints:
            for clients in args.clients:
                cell = {}
                for name in ("batched", "unbatched"):
                    asyncio.run(load(f"{base}/{name}", endpoint, clients, 3.0, attribute))  # warm-up
                    cell[name] = asyncio.run(load(f"{base}/{name}", endpoint, clients, args.seconds, attribute))
                rows.append((endpoint, clients, cell))
                b, u = cell["batched"], cell["unbatched"]
                print(f"{endpoint:<12} {clients:>3} clients | batched {b['rps']:6.1f} req/s p50 {b['p50_ms']:6.0f} ms "
                      f"p99 {b['p99_ms']:6.0f} ms errors {b['errors']} | unbatched {u['rps']:6.1f} req/s p50 "
                      f"{u['p50_ms']:6.0f} ms p99 {u['p99_ms']:6.0f} ms errors {u['errors']} | "
                      f"x{b['rps'] / max(u['rps'], 1e-9):.2f}", flush=True)
        print("\n| endpoint | clients | batched req/s | p50 ms | p99 ms | errors | unbatched req/s | p50 ms | p99 ms | "
              "errors | batched / unbatched |\n|---|---|---|---|---|---|---|---|---|---|---|")
        for endpoint, clients, cell in rows:
            b, u = cell["batched"], cell["unbatched"]
            print(f"| {endpoint} | {clients} | {b['rps']:.1f} | {b['p50_ms']:.0f} | {b['p99_ms']:.0f} | "
                  f"{b['errors']} | {u['rps']:.1f} | {u['p50_ms']:.0f} | {u['p99_ms']:.0f} | {u['errors']} | "
                  f"{b['rps'] / max(u['rps'], 1e-9):.2f} |")
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
