"""The CelebA converter on small trees in exactly CelebA's layout (CelebA itself cannot be downloaded here)."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
import webdataset as wds
from PIL import Image
from torchvision.io import decode_image, read_file

from tests.celeba_tree import CELEBA_40, make_celeba_tree
from vaegan_dist.data.celeba import prepare_celeba
from vaegan_dist.data.folder import prepare_folder
from vaegan_dist.data.manifest import DataError, read_manifest


def shard_samples(out, manifest):
    """{source file: (split, image array, json)} read back with Python's tarfile."""
    found = {}
    for split, shards in manifest.splits.items():
        for shard in shards:
            with tarfile.open(out / shard.name) as tar:
                members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
            for name, data in members.items():
                if name.endswith(".json"):
                    meta = json.loads(data)
                    image = members[name[: -len("json")] + manifest.image_encoding]
                    found[meta["source"]] = (split, image, meta)
    return found


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    expected = make_celeba_tree(root, n=30, truncated=(3,), bad_rows=(4,), missing=(6,))
    out = tmp_path_factory.mktemp("shards")
    manifest, summary = prepare_celeba(root, out, size=32, shard_samples=4, workers=2, encoding="png", progress=False)
    return root, out, manifest, summary, expected


def test_every_sample_carries_its_row_of_the_attribute_list_and_its_split(converted):
    _, out, manifest, _, expected = converted
    found = shard_samples(out, manifest)
    assert set(found) == set(expected)
    for file, (split, _, meta) in found.items():
        assert meta["attributes"] == expected[file]["attributes"], file
        assert split == expected[file]["split"], file
    assert manifest.attributes == CELEBA_40
    assert {s: manifest.samples(s) for s in manifest.splits} == {
        s: sum(e["split"] == s for e in expected.values()) for s in ("train", "valid", "test")}


def test_bad_entries_are_skipped_counted_and_named(converted):
    _, _, manifest, summary, _ = converted
    reasons = {s["file"]: s["reason"] for s in manifest.skipped}
    assert set(reasons) == {"000003.jpg", "000004.jpg", "000006.jpg"}
    assert reasons["000003.jpg"].startswith("unreadable image")
    assert "39 values (expected 40" in reasons["000004.jpg"]
    assert reasons["000006.jpg"] == "listed but missing"
    assert "skipped 3:" in summary and "listed but missing" in summary


def test_images_equal_a_direct_crop_and_resize(converted):
    root, out, manifest, _, _ = converted
    found = shard_samples(out, manifest)
    for file in ("000001.jpg", "000010.jpg", "000030.jpg"):
        source = decode_image(read_file(str(root / "img_align_celeba" / file))).float()
        # The paper's crop, a blur against aliasing (sigma 0.33 per unit of downscale), bicubic resize.
        crop = TF.crop(source, top=40, left=15, height=148, width=148)
        blurred = TF.gaussian_blur(crop, kernel_size=7, sigma=0.33 * 148 / 32)
        reference = TF.resize(blurred, [32, 32], interpolation=TF.InterpolationMode.BICUBIC, antialias=False)
        stored = torch.from_numpy(np.array(Image.open(io.BytesIO(found[file][1])))).permute(2, 0, 1)
        difference = (stored.float() - reference.clamp(0, 255)).abs()
        assert difference.mean() < 3.0  # measured 1.8-2.6 of 255, (file, difference.mean())


def test_shards_open_with_plain_webdataset(converted):
    _, out, manifest, _, _ = converted
    urls = [str(out / s.name) for s in manifest.shards("train")]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8").to_tuple("png", "json"))
    assert len(samples) == manifest.samples("train") and samples[0][0].shape == (32, 32, 3)


def test_tampered_shard_is_rewritten_and_the_rest_kept(converted, tmp_path):
    root, out, manifest, _, _ = converted
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(out), str(copy)], check=True)
    victim = copy / manifest.shards("train")[1].name
    victim.write_bytes(victim.read_bytes()[:1000])
    again, summary = prepare_celeba(root, copy, size=32, shard_samples=4, workers=1, encoding="png", progress=False)
    total = sum(len(v) for v in manifest.splits.values())
    assert f"{total} shards, {total - 1} verified and kept" in summary
    assert again.splits == manifest.splits  # rewritten byte for byte


@pytest.mark.slow
def test_interrupted_conversion_resumes(tmp_path):
    root = tmp_path / "celeba"
    make_celeba_tree(root, n=60)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vaegan_dist.cli.main", "prepare", "celeba", "--root", str(root), "--out", str(out),
           "--size", "32", "--shard-samples", "2", "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while len(list(out.glob(".progress/*.json"))) < 4 and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    finished = {p.name for p in out.glob("*.tar")}
    assert len(finished) >= 4

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    kept = int(rerun.stdout.split(" verified and kept")[0].split(", ")[-1])
    assert kept >= len(finished) - 1  # the shard being renamed at the kill may have no record yet
    assert not list(out.glob("*.tmp"))

    clean, _ = prepare_celeba(root, tmp_path / "clean", size=32, shard_samples=2, workers=2, progress=False)
    assert read_manifest(out).splits == clean.splits


@pytest.mark.parametrize("breakage, message", [
    (lambda root: None, "no such directory"),
    (lambda root: make_celeba_tree(root, n=2) and (root / "list_eval_partition.txt").unlink(),
     "list_eval_partition.txt: missing"),
    (lambda root: make_celeba_tree(root, n=2) and (root / "list_attr_celeba.txt").write_text("oops\n"),
     "list_attr_celeba.txt:1: expected the number of images"),
])
def test_bad_input_is_a_one_line_error_naming_the_file(tmp_path, breakage, message):
    root = tmp_path / "celeba"
    breakage(root)
    with pytest.raises(DataError) as err:
        prepare_celeba(root, tmp_path / "out", progress=False)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_image_folder_with_attributes(tmp_path):
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(24):
        ext = (".jpg", ".png", ".webp")[i % 3]
        rel = f"a/b/img{i}{ext}" if i % 2 else f"img.{i}{ext}"
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(root / rel)
        names.append(rel)
    (root / "notes.txt").write_text("not an image")
    rows = [f"{rel},{i % 2},{1 - i % 2}" for i, rel in enumerate(names[:-1])]  # the last image has no row
    (tmp_path / "attrs.csv").write_text("file,Smiling,Eyeglasses\n" + "\n".join(rows) + "\n")
    manifest, summary = prepare_folder(root, tmp_path / "out", size=16, attributes=tmp_path / "attrs.csv",
                                       shard_samples=8, workers=1, encoding="png", progress=False)
    found = shard_samples(tmp_path / "out", manifest)
    assert set(found) == set(names[:-1])
    for i, rel in enumerate(names[:-1]):
        assert found[rel][2]["attributes"] == {"Smiling": i % 2, "Eyeglasses": 1 - i % 2}
        assert np.asarray(Image.open(io.BytesIO(found[rel][1]))).shape == (16, 16, 3)
    assert manifest.skipped == [{"file": names[-1], "reason": "not in the attributes file"}]
    assert "skipped 1" in summary


def test_training_runs_on_converted_celeba(converted, tmp_path):
    from tests.conftest import tiny_config
    from vaegan_dist.model.store import load_state
    from vaegan_dist.train.launcher import launch

    _, out, _, _, _ = converted
    launch(tiny_config(out, tmp_path, "celeba", "train.steps=2", "data.batch_size=4", "train.grid_size=4"))
    assert load_state(tmp_path / "celeba")["step"] == 2


def test_converting_into_another_data_sets_directory_is_refused(faces32, tmp_path):
    root = tmp_path / "celeba"
    make_celeba_tree(root, n=3)
    before = (faces32 / "manifest.json").read_bytes()
    with pytest.raises(DataError, match="manifest.json: holds another data set"):
        prepare_celeba(root, faces32, size=32, progress=False)
    assert (faces32 / "manifest.json").read_bytes() == before
