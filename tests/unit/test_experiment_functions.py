"""The paper's experiments as functions, against hand computations: attribute vectors, edit scores, the
attribute-similarity metric, the pretraining protocol's pieces, and user photos prepared like `prepare folder`."""

import math
import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch
from PIL import Image

from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.user_images import load_user_images
from vaegan_dist.errors import ConfigError
from vaegan_dist.evaluate.attribute_vectors import compute_vectors, edit
from vaegan_dist.evaluate.editing import check_scales, reads_of, reconstruction_keeps, score
from vaegan_dist.evaluate.pretraining import (
    AttributeNet,
    Settings,
    label_subsets,
    mean_accuracy,
    train_classifier,
)
from vaegan_dist.evaluate.similarity import similarity_scores
from vaegan_dist.model import VAEGAN


def test_attribute_vectors_are_the_difference_of_two_means_by_hand():
    codes = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, 2.0]])
    attrs = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 0, 1], [0, 1, 1]], dtype=torch.uint8)
    v = compute_vectors(codes, attrs, ["A", "B", "All"])
    # A: mean of rows 0,1 = (2, 1); mean of rows 2,3 = (1, 3) -> (1, -2)
    torch.testing.assert_close(v.vector("A"), torch.tensor([1.0, -2.0]))
    # B: rows 1,3 = (2.5, 2); rows 0,2 = (0.5, 2) -> (2, 0)
    torch.testing.assert_close(v.vector("B"), torch.tensor([2.0, 0.0]))
    assert v.with_count.tolist() == [2, 2, 4] and v.without_count.tolist() == [2, 2, 0] and v.images == 4
    with pytest.raises(ConfigError, match="every one of the 4 encoded images has it"):
        v.vector("All")
    with pytest.raises(ConfigError, match="no such attribute; it has: A, B, All"):
        v.vector("Eyeglasses")


def test_edit_decodes_the_shifted_posterior_mean():
    torch.manual_seed(0)
    model = VAEGAN(32, latent_dim=4, encoder_fc=8, discriminator_fc=8, width=0.125, kind="vae").eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    vector = torch.tensor([1.0, -1.0, 0.5, 0.0])
    recon, edits = edit(model, x, vector, [-1.0, 2.0])
    z = model.encode(x)
    torch.testing.assert_close(recon, model.decode(z))
    torch.testing.assert_close(edits[:, 1], model.decode(z + 2 * vector))
    torch.testing.assert_close(edits[:, 0], model.decode(z - vector))


class _OneAttributeEvaluator:
    """An evaluator that says an image has "Glasses" when its mean pixel is above 0 (hand-checkable)."""

    attributes = ["Other", "Glasses"]

    def features_and_logits(self, images, batch=256):
        x = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float()
        m = x.flatten(1).mean(1)
        return m[:, None], torch.stack([-m, m], 1)


def test_edit_scores_count_gains_among_lackers_and_losses_among_havers():
    dark, bright = torch.full((3, 4, 4), -0.5), torch.full((3, 4, 4), 0.5)
    originals = torch.stack([dark, dark, dark, bright])  # 3 lack it, 1 has it
    edits = torch.stack([  # per image: scale -1, scale +1
        torch.stack([dark, bright]), torch.stack([dark, bright]), torch.stack([dark, dark]),
        torch.stack([dark, bright])])
    recon = torch.stack([bright, dark, dark, dark])  # gains it on image 0, loses it on image 3 without a vector
    rows = score(_OneAttributeEvaluator(), "Glasses", originals, recon, edits, [-1.0, 1.0])
    assert asdict(rows[0]) == {"attribute": "Glasses", "scale": -1.0, "candidates": 1, "changed": 1, "fraction": 1.0,
                       "baseline": 1.0, "vector_fraction": None}  # its reconstruction already lost it
    # +1: images 0, 1, 2 lack it; image 0's reconstruction already has it; of images 1 and 2, the edit gives
    # image 1 glasses: the vector alone changed 1 of 2.
    assert asdict(rows[1]) == {"attribute": "Glasses", "scale": 1.0, "candidates": 3, "changed": 2, "fraction": 2 / 3,
                       "baseline": 1 / 3, "vector_fraction": 1 / 2}
    unknown = score(_OneAttributeEvaluator(), "Smiling", originals, recon, edits, [1.0])
    assert unknown[0].fraction is None
    assert score(None, "Glasses", originals, recon, edits, [1.0])[0].candidates is None
    # Both ways: image 3 (has it) lost it, image 0 (lacks it) gained it: 2 of the 4 reads changed.
    reads = reads_of(_OneAttributeEvaluator(), "Glasses", originals, recon)
    assert score(_OneAttributeEvaluator(), "Glasses", originals, recon, edits, [-1.0, 1.0], reads) == rows
    kept = reconstruction_keeps("Glasses", reads)
    assert asdict(kept) == {"attribute": "Glasses", "having": 1, "lost": 1, "lacking": 3, "gained": 1,
                            "changed_fraction": 2 / 4}
    # A model that never draws the attribute scores 0% as a positive scale's baseline but loses every one of it.
    never_drawn = torch.stack([dark] * 4)
    assert score(_OneAttributeEvaluator(), "Glasses", originals, never_drawn, edits, [1.0])[0].baseline == 0
    never = reconstruction_keeps("Glasses", reads_of(_OneAttributeEvaluator(), "Glasses", originals, never_drawn))
    assert (never.lost, never.having, never.gained, never.changed_fraction) == (1, 1, 0, 1 / 4)
    assert reads_of(_OneAttributeEvaluator(), "Smiling", originals, recon) is None
    assert reads_of(None, "Glasses", originals, recon) is None


@pytest.mark.parametrize("scales, message", [([0.0], "non-zero"), ([float("nan")], "non-zero"), ([1e9], "within"),
                                             ([1.0, 1.0], "repeats")])
def test_bad_scales_are_refused(scales, message):
    with pytest.raises(ConfigError, match=message):
        check_scales(scales)
    assert check_scales([2.0, -1.0]) == (-1.0, 2.0)


def test_similarity_scores_by_hand():
    requested = torch.tensor([[1, 0], [1, 1]])
    logits = torch.tensor([[0.0, 0.0], [2 * math.atanh(0.5), 2 * math.atanh(0.5)]])
    # image 0: t = (1, -1), p = (0, 0): cosine 0 (p has no direction), mse (1 + 1) / 2 = 1
    # image 1: t = (1, 1), p = (0.5, 0.5): cosine 1, mse 0.25
    got = similarity_scores(requested, logits)
    assert got["cosine"] == pytest.approx(0.5) and got["mse"] == pytest.approx((1 + 0.25) / 2)
    perfect = similarity_scores(requested, (requested.float() * 2 - 1) * 100)
    assert perfect["cosine"] == pytest.approx(1.0) and perfect["mse"] == pytest.approx(0.0, abs=1e-12)
    opposite = similarity_scores(requested, -(requested.float() * 2 - 1) * 100)
    assert opposite["cosine"] == pytest.approx(-1.0) and opposite["mse"] == pytest.approx(4.0)


def test_label_subsets_are_nested_seeded_and_never_empty():
    subsets = label_subsets(1000, [0.01, 0.1, 1.0], seed=3)
    assert [len(s) for s in subsets.values()] == [10, 100, 1000]
    assert set(subsets[0.01].tolist()) <= set(subsets[0.1].tolist()) <= set(range(1000))
    assert torch.equal(subsets[0.1], label_subsets(1000, [0.1], seed=3)[0.1])
    assert len(label_subsets(20, [0.01], 0)[0.01]) == 1


def test_mean_accuracy_by_hand():
    logits = torch.tensor([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    labels = torch.tensor([[1, 0], [0, 1], [0, 1]])
    assert mean_accuracy(logits, labels) == pytest.approx(4 / 6)


def test_a_frozen_trunk_keeps_its_weights_and_batchnorm_statistics_and_the_head_learns():
    torch.manual_seed(0)
    model = VAEGAN(32, latent_dim=4, encoder_fc=8, discriminator_fc=8, width=0.125, kind="vaegan")
    net = AttributeNet(model.discriminator, 2)
    for p in net.trunk_parameters():
        p.requires_grad_(False)
    trunk_before = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("head")}
    head_before = net.head.weight.clone()
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    labels = (images.float().mean((1, 2, 3)) > 127.5).long()[:, None].repeat(1, 2)
    train_classifier(net, "frozen", (images, labels), (images, labels), Settings(steps=5, batch=8, eval_every=5),
                     torch.device("cpu"))
    for k, v in net.state_dict().items():
        if not k.startswith("head"):
            assert torch.equal(v, trunk_before[k]), k
    assert not torch.equal(net.head.weight, head_before)


def _save(image: Image.Image, path, **kw):
    image.save(path, **kw)
    return path


def test_user_images_are_prepared_exactly_as_prepare_folder_does(tmp_path):
    """Each photo through `prepare folder` (png shards, read back with webdataset) and through --image: the
    same pixels, for RGB, greyscale, RGBA and webp files of odd shapes."""
    import webdataset as wds

    from vaegan_dist.data.folder import prepare_folder

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8))
    photos = tmp_path / "photos"
    photos.mkdir()
    files = [_save(rgb, photos / "a.png"), _save(rgb.convert("L"), photos / "grey.png"),
             _save(rgb.convert("RGBA"), photos / "alpha.png"), _save(rgb.rotate(90, expand=True), photos / "b.webp",
                                                                      lossless=True)]
    prepare_folder(photos, tmp_path / "shards", size=32, encoding="png", workers=1, progress=False)
    converted = {}
    for shard in (tmp_path / "shards").glob("*.tar"):
        for key, image in wds.WebDataset(str(shard), shardshuffle=False).decode("rgb8").to_tuple("__key__", "png"):
            converted[key] = torch.from_numpy(image.copy()).permute(2, 0, 1)
    assert len(converted) == len(files)
    got = load_user_images(files, 32)
    assert got.shape == (4, 3, 32, 32) and got.dtype == torch.uint8
    for i, f in enumerate(files):
        match = [k for k in converted if k == f.stem]
        assert len(match) == 1, (f, list(converted))
        assert torch.equal(got[i], converted[match[0]]), f.name
    grey = got[1]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # greyscale becomes three equal channels


def test_a_jpeg_with_an_exif_rotation_is_turned_upright(tmp_path):
    """A phone stores a portrait photo as landscape pixels plus orientation 6 (rotate 90 clockwise to view)."""
    upright = np.zeros((80, 60, 3), dtype=np.uint8)
    upright[:20] = (255, 0, 0)  # red band at the top of the upright photo
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _save(stored, tmp_path / "phone.jpg", exif=exif, quality=95)
    got = load_user_images([path], 32)[0].float()
    top, bottom = got[:, :4].mean((1, 2)), got[:, -4:].mean((1, 2))
    assert top[0] > 200 and top[1] < 60, top  # red on top, as the person saw it
    assert bottom[0] < 60, bottom


def test_user_image_errors_name_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="notes.txt: not a jpg, png or webp"):
        load_user_images([tmp_path / "notes.txt"], 32)
    with pytest.raises(DataError, match="missing.jpg: no such file"):
        load_user_images([tmp_path / "missing.jpg"], 32)
    with pytest.raises(DataError, match="broken.png: unreadable image"):
        load_user_images([tmp_path / "broken.png"], 32)
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(DataError, match="folder.png: is a directory"):
        load_user_images([tmp_path / "folder.png"], 32)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 1-bit: a few KB on disk, 400 megapixels decoded
    with pytest.raises(DataError, match="bomb.png: unreadable image"):
        load_user_images([bomb], 32)
    warned = tmp_path / "warned.png"  # between 89 and 179 megapixels PIL warns instead of refusing
    Image.new("1", (10000, 10000)).save(warned)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="warned.png: unreadable image .*10000x10000 pixels, more than the 40"):
            load_user_images([warned], 32)
    assert [str(w.message) for w in caught] == []  # a warning would be a second line above the error


def test_attributes_to_order_keep_real_combinations_and_force_the_settings():
    from vaegan_dist.evaluate.similarity import attributes_to_order, parse_settings

    labels = torch.tensor([[1, 0, 0], [0, 1, 1]], dtype=torch.uint8)  # data order: A, B, C
    settings = parse_settings(["C=1", "A=0"], ["C", "B", "A"])
    y = attributes_to_order(["C", "B", "A"], labels, ["A", "B", "C"], 5, settings)
    assert y.tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0], [1, 0, 0]]  # B follows the real rows
    with pytest.raises(ConfigError, match="expected NAME=0 or NAME=1"):
        parse_settings(["C=2"], ["C"])
    with pytest.raises(ConfigError, match="no such attribute"):
        parse_settings(["D=1"], ["C"])


def test_the_data_a_command_uses_is_the_runs_own_only_if_it_is_here(tmp_path):
    import dataclasses

    from vaegan_dist.config import build_config
    from vaegan_dist.evaluate.run import data_to_use

    def cfg(source: str):  # a checkpoint's saved config, as load_model returns it
        smoke = build_config("smoke")
        return dataclasses.replace(smoke, data=dataclasses.replace(smoke.data, source=source))

    assert data_to_use(cfg(str(tmp_path)), None) == str(tmp_path)
    assert data_to_use(cfg("s3://bucket/celeba64"), None) == "s3://bucket/celeba64"
    assert data_to_use(cfg("/gone/shards"), "/here/shards") == "/here/shards"  # --data wins
    with pytest.raises(DataError, match=r"/gone/shards: the data this model trained on is not here; pass --data$"):
        data_to_use(cfg("/gone/shards"), None)
    with pytest.raises(DataError, match="pipe:touch /tmp/x: the data this model trained on is not here; pass "
                                        "--data \\(for y\\)"):  # a checkpoint's command is never run
        data_to_use(cfg("pipe:touch /tmp/x"), None, " (for y)")
