"""Running means of step metrics between logs, and the console progress line."""

from __future__ import annotations

import time

import torch


class MetricMeter:
    """Sums detached tensors on the device; one host sync per log interval instead of per step."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.images = 0
        self.started = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor], images: int) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1
        self.images += images

    def means(self) -> dict[str, float]:
        """Means since the last call, plus throughput; resets the meter."""
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        out = {k: float(v) / self.count for k, v in self.sums.items()} if self.count else {}
        out["perf/images_per_s"] = self.images / elapsed
        out["perf/step_time_s"] = elapsed / max(self.count, 1)
        self.__init__()
        return out


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600
            else f"{seconds // 60}m{seconds % 60:02d}s")


def progress_line(step: int, total: int, m: dict[str, float], world_size: int,
                  fields: tuple[tuple[str, str, str], ...] = ()) -> str:
    """One line a person can read at a glance: ``fields`` are (metric key, label, format) chosen by the
    model kind; keys missing from ``m`` are left out. images/s counts every worker; the share of peak is one
    worker's matmul and convolution FLOP/s over its device's measured peak (vaegan_dist.train.flops)."""
    ips = m.get("perf/images_per_s", 0.0) * world_size
    eta = (total - step) * m.get("perf/step_time_s", 0.0)
    shown = " ".join(f"{label} {m[key]:{fmt}}" for key, label, fmt in fields if key in m)
    share = f" {100 * m['perf/peak_share']:3.0f}% of peak |" if "perf/peak_share" in m else ""
    return (f"step {step:>7d}/{total} {100 * step / total:5.1f}% | {shown} | {ips:7.1f} img/s |{share} "
            f"eta {_duration(eta)}")
