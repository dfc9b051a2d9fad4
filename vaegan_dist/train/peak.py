"""The device's peak arithmetic rate, measured once per machine and cached: the denominator of the step's
share of peak (:mod:`vaegan_dist.train.flops`).

The peak is what this process can reach at all, not a datasheet figure: the better of a large matmul and a
large channels-last 3x3 convolution, in the precision the step computes in (float32, or bf16 under autocast)
and with the thread count the worker trains with. A datasheet would be a guess for a CPU (clocks under AVX-512
load, SMT, a VM's share of a host) and would not know what oneDNN reaches; a measurement does.

It takes about a second on a CPU (more where bf16 is emulated) and is cached in
``$XDG_CACHE_HOME/vaegan-dist/peak.json`` (default ``~/.cache``), keyed by the device's name, the precision, the
thread count, the CPU ISA caps in force and the torch version, so a run on a known machine reads it back. The
cache is ours and only a cache: an entry that is not a positive finite number, or a file that does not parse,
is measured again and rewritten (atomically), and anything but a small regular file there is not read. A figure
measured while the machine was busy (Ray's workers starting beside it: 45.6 GFLOP/s against 131 quiet, on a
2-core AVX2 machine) would make every later share look high (216% was shown). So a step that runs well above the
cached peak discards that measurement (:func:`raise_peak`): the next run measures again, and what the step
sustained stays as a floor under the new figure (a rate the device reached is a lower bound of its peak, never
the peak itself). Delete the file to measure again by hand.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from vaegan_dist.atomic import atomic_file
from vaegan_dist.train.precision import cpu_has_native_bf16

_MAX_ENTRIES = 64  # a shared home directory on many machine types must not grow the file without bound
_MAX_BYTES = 1 << 20


def cache_path() -> Path:
    """The XDG cache directory's file; a relative XDG_CACHE_HOME is ignored, as the XDG spec says (it would
    resolve against a Ray worker's working directory)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaegan-dist" / "peak.json"


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name with ATen's vector ISA: what a peak belongs to."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{model or 'cpu'} ({torch.backends.cpu.get_cpu_capability()})"


def cache_key(device: torch.device, dtype: torch.dtype, threads: int) -> str:
    """One entry per device, precision, thread count, ISA cap and torch version: each changes the peak."""
    caps = " ".join(f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ)
    return (f"{device_name(device)} | {str(dtype).removeprefix('torch.')} | {threads} threads | "
            f"torch {torch.__version__}{' | ' + caps if caps else ''}")


def _best_rate(fn: Callable[[], object], flops: float, device: torch.device, repeats: int) -> float:
    """Best GFLOP/s over ``repeats`` timed calls after one warm-up call."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - started)
    return flops / best / 1e9


def measure_peak(device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """GFLOP/s of a large matmul and a large convolution in ``dtype`` on ``device`` (current thread count)."""
    gpu = device.type == "cuda"
    # Emulated bf16 on a CPU runs at ~1% of float32's matmul rate (0.6 GFLOP/s on an AVX2 core): smaller
    # shapes keep its measurement near a second; it is no peak anyone would train at anyway.
    slow = not gpu and dtype == torch.bfloat16 and not cpu_has_native_bf16()
    n = 8192 if gpu else 256 if slow else 1024
    batch, channels, size = (256, 256, 32) if gpu else (4, 64, 16) if slow else (16, 128, 16)
    conv_flops = 2.0 * batch * channels * channels * 9 * size * size
    # Its own random stream: the run's global generator is left where it was (rank 0 alone measures).
    gen = torch.Generator(device).manual_seed(0)
    a, b = (torch.randn(n, n, device=device, dtype=dtype, generator=gen) for _ in range(2))
    x = torch.randn(batch, channels, size, size, device=device, dtype=dtype, generator=gen)
    w = torch.randn(channels, channels, 3, 3, device=device, dtype=dtype, generator=gen)
    x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    with torch.no_grad():
        repeats = 10 if gpu else 1 if slow else 3
        return {"matmul": _best_rate(lambda: a @ b, 2.0 * n**3, device, repeats),
                "conv": _best_rate(lambda: F.conv2d(x, w, padding=1), conv_flops, device, repeats)}


def _read_cache(path: Path) -> dict[str, dict[str, float]]:
    """The cache's entries, or {} for anything but a regular file of at most 1 MiB holding a JSON object (a FIFO
    would block, a link to /dev/zero would never end, deep nesting would exhaust the stack)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_BYTES:
            return {}
        with os.fdopen(fd, "rb", closefd=False) as f:
            entries = json.loads(f.read(_MAX_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return {}
    finally:
        os.close(fd)
    return entries if isinstance(entries, dict) else {}


def _positive_finite(value: object) -> bool:
    if type(value) not in (int, float):  # not bool, not a string
        return False
    try:
        return math.isfinite(float(value)) and value > 0
    except OverflowError:  # an integer of hundreds of digits
        return False


def _valid(entry: object) -> bool:
    return isinstance(entry, dict) and all(_positive_finite(entry.get(k)) for k in ("matmul", "conv"))


def _best(entry: dict) -> float:
    """The entry's peak: its matmul, its convolution, or a rate a step was seen to sustain (``observed``)."""
    return float(max(v for k, v in entry.items() if k in ("matmul", "conv", "observed") and _positive_finite(v)))


def _store(path: Path, key: str, entry: dict[str, float]) -> None:
    """Put ``entry`` under ``key``, keeping the other valid entries as the file holds them now (another process
    may have written since we read it), at most _MAX_ENTRIES in all, the newest last."""
    entries = {k: v for k, v in _read_cache(path).items() if _valid(v) and k != key}
    entries = dict(list(entries.items())[-(_MAX_ENTRIES - 1):])
    entries[key] = entry
    try:
        with atomic_file(path, text=True) as f:
            json.dump(entries, f, indent=1)
    except OSError:
        pass  # a read-only home directory: measure again next time


def peak_key(device: torch.device, dtype: torch.dtype) -> str:
    """This process's cache key: the thread count is the one in force now (the worker's)."""
    return cache_key(device, dtype, torch.get_num_threads() if device.type == "cpu" else 0)


def peak_gflops(device: torch.device, dtype: torch.dtype) -> tuple[float, bool]:
    """(the device's peak GFLOP/s in ``dtype`` at this process's thread count, whether it came from the cache)."""
    key, path = peak_key(device, dtype), cache_path()
    entries = _read_cache(path)
    entry = entries.get(key)
    if _valid(entry):
        return _best(entry), True
    measured: dict[str, float] = dict(measure_peak(device, dtype))
    floor = entry.get("observed") if isinstance(entry, dict) else None
    if _positive_finite(floor):  # a rate a step sustained here before: the new figure is at least that
        measured["observed"] = float(floor)
    _store(path, key, measured)
    return _best(measured), False


def raise_peak(key: str, gflops: float) -> None:
    """A step sustained ``gflops``, above the peak cached under ``key`` (:func:`peak_key`): that peak was measured
    on a busy machine. Its measurement is dropped (the next run measures again) and ``gflops`` kept as a floor."""
    if not _positive_finite(gflops):
        return
    path = cache_path()
    entry = _read_cache(path).get(key)
    if _valid(entry) and _best(entry) < gflops:
        _store(path, key, {"observed": float(gflops)})
