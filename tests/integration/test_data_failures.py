"""Unreadable data ends the stream with one line naming the source, instead of spinning and logging forever."""

import json
import logging
import shutil
from types import SimpleNamespace

import pytest

import vaegan_dist.data.failures as failures_module
from vaegan_dist.data.failures import FIRST_WARNINGS, Failures
from vaegan_dist.data.manifest import DataError, Manifest, write_manifest
from vaegan_dist.data.shards import ShardSeriesWriter
from vaegan_dist.data.stream import first_images, training_stream


@pytest.fixture
def missing_shards(faces32, tmp_path):
    """A manifest whose shards are all gone."""
    data = tmp_path / "missing"
    data.mkdir()
    shutil.copy(faces32 / "manifest.json", data / "manifest.json")
    return data


@pytest.fixture
def garbage_images(tmp_path):
    """Whole, checksummed shards whose every image is garbage."""
    data = tmp_path / "garbage"
    with ShardSeriesWriter(data, "train", max_samples=50) as writer:
        for i in range(200):
            writer.write({"__key__": f"{i:06d}", "png": b"not a png " * 10, "json": json.dumps({"attributes": {}})})
    write_manifest(Manifest("synthetic", 32, "png", [], {"train": writer.shards}), data)
    return data


@pytest.mark.timeout(60)
@pytest.mark.parametrize("loader_workers", [0, 1])
@pytest.mark.parametrize("source, message", [
    ("missing_shards", r"20 shards in a row unreadable \(last: .*/train-00000\d\.tar: FileNotFoundError"),
    ("garbage_images", r"1000 samples in a row unreadable \(last: sample \d{6} in .*/train-00000\d\.tar: "),
])
def test_unreadable_data_ends_the_stream_with_one_line(request, caplog, source, message, loader_workers):
    data = request.getfixturevalue(source)
    caplog.set_level(logging.WARNING)
    stream = training_stream(data, "train", 32, 4, shuffle_buffer=8, loader_workers=loader_workers)
    with pytest.raises(DataError) as err:
        next(stream)
    text = str(err.value)
    assert text.startswith(f"{data / 'manifest.json'}: ") and "\n" not in text and "Caught" not in text, text
    assert err.match(message)
    if loader_workers == 0:  # the first few one by one, then a summary at most every 30 s
        assert FIRST_WARNINGS <= len(caplog.records) <= FIRST_WARNINGS + 2


def test_first_images_of_unreadable_data_is_one_line(missing_shards):
    with pytest.raises(DataError, match=r"manifest.json: split 'valid' yielded no readable images$"):
        first_images(missing_shards, "valid", 4)


def test_a_good_sample_resets_the_count_and_warnings_are_summarised(caplog, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(failures_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    caplog.set_level(logging.WARNING)
    failures = Failures("src", max_bad_shards=3, max_bad_samples=3)
    for _ in range(50):  # failures with good samples in between never add up
        failures.sample_failed("k", "u", ValueError("bad"))
        failures.sample_failed("k", "u", ValueError("bad"))
        failures.shard_failed(OSError("gone", "/x/train-000001.tar"))
        failures.shard_failed(OSError("gone", "/x/train-000001.tar"))
        failures.ok()
        clock[0] += 1.0
    assert (failures.samples, failures.shards) == (100, 100)
    summaries = [r.getMessage() for r in caplog.records][FIRST_WARNINGS:]
    assert len(summaries) == 2  # at t=1 s and t=31 s
    assert summaries[-1] == ("src: skipped 62 unreadable shards and 63 corrupt samples so far "
                             "(last: sample k in u: ValueError: bad); next summary in 30 s")
    failures.shard_failed(OSError("gone", "/x/train-000001.tar"))
    failures.shard_failed(OSError("gone", "/x/train-000001.tar"))
    with pytest.raises(DataError,
                       match=r"^src: 3 shards in a row unreadable \(last: /x/train-000001.tar: OSError: gone\)$"):
        failures.shard_failed(OSError("gone", "/x/train-000001.tar"))
