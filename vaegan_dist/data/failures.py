"""Counting what the reader had to skip, and stopping when nothing readable is left.

A reader that skips unreadable shards and corrupt samples must not skip forever: with every shard
missing (or every image garbage) it would spin and log without end while its DDP peers wait. One
:class:`Failures` per reader process counts failures since the last good sample and raises a one-line
:class:`DataError` naming the source once too many come in a row. Warnings are rate-limited: the first
few one by one, then a summary at most every ``summary_every_s`` seconds.
"""

from __future__ import annotations

import logging
import time

from vaegan_dist.data.manifest import DataError

log = logging.getLogger("vaegan_dist.data.stream")

MAX_BAD_SHARDS = 20  # in a row; a run with half its shards missing trips this once in ~10^6 shard reads
MAX_BAD_SAMPLES = 1000  # in a row
FIRST_WARNINGS = 5


def describe(exn: Exception, url: str | None = None) -> str:
    """``Type: message`` on one line, without the ``url`` that the tar reader appends to ``args``."""
    args = exn.args[:-1] if url is not None and exn.args and exn.args[-1] == url else exn.args
    text = " ".join(" ".join(str(a) for a in args).split())
    return f"{type(exn).__name__}: {text[:200]}" if text else type(exn).__name__


class Failures:
    """Handler for unreadable shards (``shard_failed``, webdataset's handler signature) and corrupt samples
    (``sample_failed``); ``ok`` marks a good sample."""

    def __init__(self, where: str, max_bad_shards: int = MAX_BAD_SHARDS, max_bad_samples: int = MAX_BAD_SAMPLES,
                 summary_every_s: float = 30.0):
        self.where, self.max_bad_shards, self.max_bad_samples = where, max_bad_shards, max_bad_samples
        self.summary_every_s = summary_every_s
        self.shards = self.samples = 0  # totals
        self.shards_in_a_row = self.samples_in_a_row = 0  # since the last good sample
        self.last = ""
        self._next_summary = 0.0

    def ok(self) -> None:
        self.shards_in_a_row = self.samples_in_a_row = 0

    def shard_failed(self, exn: Exception) -> bool:
        url = exn.args[-1] if exn.args and isinstance(exn.args[-1], str) else "?"
        self.shards += 1
        self.shards_in_a_row += 1
        self.last = f"{url}: {describe(exn, url)}"
        self._warn("skipped unreadable shard (%d so far): %s", self.shards, self.last)
        if self.shards_in_a_row >= self.max_bad_shards:
            raise DataError(f"{self.where}: {self.shards_in_a_row} shards in a row unreadable "
                            f"(last: {self.last})") from None
        return True

    def sample_failed(self, key: object, url: object, exn: Exception) -> None:
        self.samples += 1
        self.samples_in_a_row += 1
        self.last = f"sample {key} in {url}: {describe(exn)}"
        self._warn("skipped sample %s in %s (%d so far): %s", key, url, self.samples, describe(exn))
        if self.samples_in_a_row >= self.max_bad_samples:
            raise DataError(f"{self.where}: {self.samples_in_a_row} samples in a row unreadable "
                            f"(last: {self.last})") from None

    def _warn(self, message: str, *args: object) -> None:
        if self.shards + self.samples <= FIRST_WARNINGS:
            log.warning(message, *args)
            return
        now = time.monotonic()
        if now >= self._next_summary:
            self._next_summary = now + self.summary_every_s
            log.warning("%s: skipped %d unreadable shards and %d corrupt samples so far (last: %s); "
                        "next summary in %.0f s", self.where, self.shards, self.samples, self.last,
                        self.summary_every_s)
