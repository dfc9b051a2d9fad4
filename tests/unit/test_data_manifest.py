"""What a manifest may say: shard names that are plain file names, fields of the right types, and shard
checksums that the reader checks."""

import json
import logging
import shutil

import pytest
import torch

from vaegan_dist.data.manifest import DataError, parse_manifest
from vaegan_dist.data.sources import open_source
from vaegan_dist.data.stream import first_images, training_stream
from vaegan_dist.data.synthetic_faces import face


def copy_with_manifest(faces32, dst, edit):
    shutil.copytree(faces32, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    edit(manifest)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.mark.parametrize("name", ["train-000000.tar; touch {marker}", "train-000000.tar$(touch {marker})",
                                  "../x/train-000000.tar", "train-000000.tar /tmp/y", "valid-000000.tar",
                                  "http://evil/train-000000.tar"])
def test_a_shard_name_that_is_not_a_plain_file_name_is_refused(faces32, tmp_path, name):
    marker = tmp_path / "ran"
    name = name.format(marker=marker)

    def edit(m):
        m["splits"]["train"][0]["name"] = name
    data = copy_with_manifest(faces32, tmp_path / "data", edit)
    for read in (lambda: open_source(data, "train"), lambda: first_images(data, "train", 2),
                 lambda: next(training_stream(data, "train", 32, 4))):
        with pytest.raises(DataError) as err:
            read()
        assert str(err.value).startswith(f"{data / 'manifest.json'}: shard name ")
        assert "\n" not in str(err.value)
    assert not marker.exists()


def test_an_s3_manifest_with_a_shell_command_for_a_shard_name_runs_nothing(faces32, tmp_path, monkeypatch):
    from pyarrow import fs

    from vaegan_dist.data import remote

    marker = tmp_path / "ran"

    def edit(m):
        m["splits"]["valid"][0]["name"] = f"valid-000000.tar -; touch {marker}; echo "
    copy_with_manifest(faces32, tmp_path / "bucket" / "d", edit)
    monkeypatch.setattr(remote, "_filesystem",
                        lambda root: (fs.SubTreeFileSystem(str(tmp_path), fs.LocalFileSystem()), "bucket"))
    with pytest.raises(DataError, match=r"^s3://bucket/d/manifest.json: shard name 'valid-000000.tar -; touch"):
        first_images("s3://bucket/d", "valid", 2)
    assert not marker.exists()


def good_manifest(faces32) -> dict:
    return json.loads((faces32 / "manifest.json").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(splits=[["train-000000.tar"]]), "field 'splits' must be an object, not list"),
    (lambda m: m.update(splits="train"), "field 'splits' must be an object, not str"),
    (lambda m: m["splits"].update(train={"name": "train-000000.tar"}), "field 'splits.train' must be a list"),
    (lambda m: m["splits"]["train"].__setitem__(0, "train-000000.tar"), "splits.train[0] must be an object"),
    (lambda m: m["splits"]["train"][0].pop("sha256"), "splits.train[0]: field 'sha256' is missing"),
    (lambda m: m["splits"]["train"][0].update(samples="40"), "field 'samples' must be an integer, not str"),
    (lambda m: m["splits"]["train"][0].update(sha256="x" * 64), "sha256 64 hex digits"),
    (lambda m: m["splits"].update({"../train": []}), "split name '../train' is not a plain identifier"),
    (lambda m: m.update(image_size="32"), "field 'image_size' must be an integer, not str"),
    (lambda m: m.update(image_size=True), "field 'image_size' must be an integer, not bool"),
    (lambda m: m.update(image_encoding="gif"), "image_encoding 'gif'"),
    (lambda m: m.update(attributes="Smiling"), "field 'attributes' must be a list"),
    (lambda m: m.pop("dataset"), "field 'dataset' is missing"),
    (lambda m: m.update(extra=1), "unknown field(s) extra"),
])
def test_a_malformed_manifest_is_a_one_line_error_naming_the_field(faces32, edit, message):
    manifest = good_manifest(faces32)
    edit(manifest)
    with pytest.raises(DataError) as err:
        parse_manifest(json.dumps(manifest), "/data/manifest.json")
    assert str(err.value).startswith("/data/manifest.json") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_good_manifest_parses(faces32):
    manifest = parse_manifest((faces32 / "manifest.json").read_text(), "m")
    assert manifest.samples("train") == 192 and manifest.shards("train")[0].name == "train-000000.tar"


def test_a_shard_that_does_not_match_its_checksum_is_skipped_and_named(faces32, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(faces32, data)
    shutil.copy(faces32 / "test-000000.tar", data / "train-000000.tar")  # a valid shard, but not this one
    caplog.set_level(logging.WARNING)
    images, _ = first_images(data, "train", 3)
    for k in range(3):  # train-000000.tar skipped: the first images are those of train-000001.tar
        assert torch.equal(images[k], torch.from_numpy(face(3, 40 + k, 32)[0].copy()).permute(2, 0, 1))
    assert "train-000000.tar: ChecksumMismatch" in caplog.text and "(1 so far)" in caplog.text


def test_a_source_whose_every_shard_fails_its_checksum_stops_with_one_line(faces32, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(faces32, data)
    for i in range(5):
        shutil.copy(faces32 / "test-000000.tar", data / f"train-{i:06d}.tar")
    with pytest.raises(DataError, match=r"manifest.json: 20 shards in a row unreadable \(last: .*ChecksumMismatch"):
        next(training_stream(data, "train", 32, 4))


def test_shards_whose_every_image_was_skipped_are_not_read(faces32, tmp_path):
    def edit(m):
        m["splits"]["train"][0]["samples"] = 0
        m["splits"]["valid"][0]["samples"] = 0
    data = copy_with_manifest(faces32, tmp_path / "data", edit)
    assert open_source(data, "train").urls == [str(data / f"train-{i:06d}.tar") for i in range(1, 5)]
    with pytest.raises(DataError, match=r"manifest.json: split 'valid' has no samples$"):
        open_source(data, "valid")
