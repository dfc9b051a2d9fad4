"""What ``prepare`` accepts: its output directory, the bounds of its options, and the images it meets."""

import io
import struct
import tarfile
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.celeba_tree import make_celeba_tree
from vaegan_dist.cli.main import main
from vaegan_dist.data.folder import prepare_folder
from vaegan_dist.data.manifest import DataError, read_manifest
from vaegan_dist.data.synthetic import prepare_synthetic


def images_of(out, manifest, split="train"):
    """{source file: HxWx3 array} of one split, read back with tarfile."""
    found = {}
    for shard in manifest.shards(split):
        with tarfile.open(out / shard.name) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, data in members.items():
            if name.endswith(".json"):
                import json
                source = json.loads(data)["source"]
                found[source] = np.asarray(Image.open(io.BytesIO(members[name[:-4] + manifest.image_encoding])))
    return found


def photo_folder(root, n=12, size=(40, 30)):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"img{i:02d}.png")
    return root


# --- the output directory --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["synthetic", "folder", "celeba"])
def test_a_foreign_directory_is_refused_and_left_untouched(tmp_path, kind, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    foreign = np.random.default_rng(1).bytes(5000)
    (out / "train-000000.tar").write_bytes(foreign)
    (out / "notes.txt").write_text("my notes")
    if kind == "synthetic":
        args = ["prepare", "synthetic", "--out", str(out), "--num", "20", "--size", "32"]
    elif kind == "folder":
        args = ["prepare", "folder", "--root", str(photo_folder(tmp_path / "photos")), "--out", str(out)]
    else:
        make_celeba_tree(tmp_path / "celeba", n=4)
        args = ["prepare", "celeba", "--root", str(tmp_path / "celeba"), "--out", str(out), "--size", "32"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out}: not empty (notes.txt, train-000000.tar) and not a data set of ours" in err
    assert (out / "train-000000.tar").read_bytes() == foreign
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "train-000000.tar"]


def test_an_empty_or_new_directory_is_claimed_and_a_rerun_resumes(tmp_path):
    photos = photo_folder(tmp_path / "photos")
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new" / "deeper"):
        manifest, _ = prepare_folder(photos, out, size=16, shard_samples=4, workers=1, progress=False)
        assert sum(manifest.samples(split) for split in manifest.splits) == 12
    (tmp_path / "empty" / "manifest.json").unlink()  # as if killed before the manifest: still ours
    _, summary = prepare_folder(photos, tmp_path / "empty", size=16, shard_samples=4, workers=1, progress=False)
    assert "verified and kept" in summary and ", 0 verified" not in summary
    other = photo_folder(tmp_path / "other")
    with pytest.raises(DataError, match=r"empty: holds an unfinished conversion of another data set"):
        (tmp_path / "empty" / "manifest.json").unlink()
        prepare_folder(other, tmp_path / "empty", size=16, progress=False)


# --- bounds ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["prepare", "celeba", "--root", "r", "--out", "o", "--size", "100000"],
     "argument --size: 100000 is not in 8..1024"),
    (["prepare", "folder", "--root", "r", "--out", "o", "--size", "4"], "argument --size: 4 is not in 8..1024"),
    (["prepare", "folder", "--root", "r", "--out", "o", "--shard-samples", "0"],
     "argument --shard-samples: 0 is not in"),
    (["prepare", "synthetic", "--out", "o", "--shard-samples", "-1"], "argument --shard-samples: -1 is not in"),
    (["prepare", "synthetic", "--out", "o", "--num", "3"], "argument --num: 3: must be at least 10"),
    (["prepare", "celeba", "--root", "r", "--out", "o", "--workers", "0"], "argument --workers: 0 is not in 1..256"),
    (["sample", "--checkpoint", "c", "--out", "o", "--n", "0"], "argument --n: 0 is not in 1..1024"),
    (["sample", "--checkpoint", "c", "--out", "o", "--n", "-3"], "argument --n: -3 is not in 1..1024"),
    (["reconstruct", "--checkpoint", "c", "--data", "d", "--out", "o", "--n", "0"],
     "argument --n: 0 is not in 1..1024"),
])
def test_out_of_range_options_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1  # one line, no usage block


@pytest.mark.parametrize("call, message", [
    (lambda root, out: prepare_folder(root, out, size=100000, progress=False), "--size 100000: choose 8..1024"),
    (lambda root, out: prepare_folder(root, out, shard_samples=0, progress=False),
     "--shard-samples 0: must be at least 1"),
    (lambda root, out: prepare_folder(root, out, workers=0, progress=False), "--workers 0: choose 1..256"),
    (lambda root, out: prepare_synthetic(out, num=20, shard_samples=0, progress=False), "--shard-samples 0: must be"),
    (lambda root, out: prepare_synthetic(out, num=20, size=4096, progress=False), "--size 4096: choose 8..1024"),
])
def test_out_of_range_options_are_one_line_errors_in_the_library(tmp_path, call, message):
    with pytest.raises(DataError, match=message):
        call(photo_folder(tmp_path / "photos"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_garbage_partition_list_is_an_error_naming_it(tmp_path, capsys):
    root = tmp_path / "celeba"
    make_celeba_tree(root, n=6)
    (root / "list_eval_partition.txt").write_text("\n".join(f"{i:06d}.jpg x" for i in range(1, 7)) + "\n")
    assert main(["prepare", "celeba", "--root", str(root), "--out", str(tmp_path / "out"), "--size", "32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{root}: no usable images; skipped 6, the first 000001.jpg: " in err
    assert "list_eval_partition.txt:1: expected '<file> 0|1|2'" in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_folder_of_unreadable_images_is_an_error(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(5):
        (root / f"img{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=rf"{root}: no image could be converted; skipped 5, the first img\d.jpg: "
                                        "unreadable image"):
        prepare_folder(root, tmp_path / "out", size=16, workers=1, progress=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


# --- images ----------------------------------------------------------------------------------------

def png_bomb(path, side: int) -> None:
    """A greyscale PNG of side x side black pixels: a few hundred KB on disk, side^2 bytes decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    packer, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))


def test_an_image_too_large_to_decode_is_skipped_from_its_header(tmp_path):
    root = photo_folder(tmp_path / "photos", n=6)
    png_bomb(root / "bomb.png", 13000)
    assert (root / "bomb.png").stat().st_size < 400_000
    manifest, summary = prepare_folder(root, tmp_path / "out", size=16, workers=1, progress=False)
    assert manifest.skipped == [{"file": "bomb.png", "reason": "unreadable image (ImageTooLarge: 13000x13000 pixels, "
                                                              "more than the 40 megapixel limit)"}]
    assert "skipped 1: 1 unreadable image" in summary


def test_large_jpegs_are_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    from vaegan_dist.data import preprocess

    y, x = np.mgrid[0:3000, 0:4000]
    pixels = np.stack([x * 255 // 4000, y * 255 // 3000, (x + y) * 255 // 7000], -1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=95)
    decoded = []
    crop_and_resize = preprocess.crop_and_resize
    monkeypatch.setattr(preprocess, "crop_and_resize",
                        lambda image, crop, size: decoded.append(image.size) or crop_and_resize(image, crop, size))
    small = preprocess.load_image(tmp_path / "big.jpg", "center", 64)
    assert decoded == [(500, 375)]  # 1/8 scale: still more than twice the output side
    with Image.open(tmp_path / "big.jpg") as full:
        reference = crop_and_resize(full, "center", 64)
    assert np.abs(small.astype(int) - reference.astype(int)).mean() < 2.0


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for name, value in (("dark", 64 * 257), ("mid", 128 * 257), ("light", 200 * 257)):
        Image.fromarray(np.full((20, 20), value, dtype=np.uint16)).save(root / f"{name}.png")
        assert Image.open(root / f"{name}.png").mode.startswith("I")
    manifest, _ = prepare_folder(root, tmp_path / "out", size=8, encoding="png", workers=1, progress=False)
    found = {}
    for split in manifest.splits:
        found.update(images_of(tmp_path / "out", manifest, split))
    assert {name: np.unique(image).tolist() for name, image in found.items()} == {
        "dark.png": [64], "mid.png": [128], "light.png": [200]}


def test_a_converted_data_set_reads_back(tmp_path):
    manifest, _ = prepare_folder(photo_folder(tmp_path / "p"), tmp_path / "out", size=16, workers=1, progress=False)
    assert read_manifest(tmp_path / "out").splits == manifest.splits


def test_a_conversion_interrupted_before_ownership_records_existed_still_resumes(tmp_path):
    from vaegan_dist.data.manifest import OWNER_NAME, claim_output_dir

    out = tmp_path / "out"
    (out / ".progress").mkdir(parents=True)
    (out / "train-000000.tar").write_bytes(b"x")
    (out / ".progress" / "train-000000.tar.json").write_text('{"options": {"image_root": '
                                                             '"/data/celeba/img_align_celeba"}}')
    claim_output_dir(out, "celeba", "/data/celeba")
    assert (out / OWNER_NAME).exists()
    (out / OWNER_NAME).unlink()
    with pytest.raises(DataError, match="not a data set of ours"):
        claim_output_dir(out, "folder", "/data/photos")
