"""The evaluator file: it round-trips, it is read without running code, and it refuses data it was not
trained for (its features would not mean 'real' there)."""


import pytest
import torch

from vaegan_dist.data.manifest import DataError, Manifest, ShardInfo
from vaegan_dist.data.sources import ShardSource
from vaegan_dist.errors import CheckpointError
from vaegan_dist.evaluate import Evaluator, load_evaluator
from vaegan_dist.evaluate.classifier import FEATURES, AttributeClassifier


def _evaluator(fingerprint="a" * 64) -> Evaluator:
    torch.manual_seed(0)
    return Evaluator(AttributeClassifier(32, 3).eval(), ["Male", "Smiling", "Young"], 32, fingerprint, "/data/faces",
                     {"Male": 0.99, "Smiling": 0.9, "Young": 0.96})


def _source(fingerprint: str) -> ShardSource:
    return ShardSource(["/d/train-000000.tar"], ["Male", "Smiling", "Young"], "png", 32, ("train",), "/d/manifest.json",
                       fingerprint=fingerprint)


def test_an_evaluator_round_trips_with_its_report(tmp_path):
    ev = _evaluator()
    path = ev.save(tmp_path / "ev.pt")
    back = load_evaluator(path)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    f1, l1 = ev.features_and_logits(x)
    f2, l2 = back.features_and_logits(x)
    torch.testing.assert_close(f1, f2)
    torch.testing.assert_close(l1, l2)
    assert f1.shape == (4, FEATURES) and l1.shape == (4, 3)
    assert back.attributes == ev.attributes and back.test_accuracy == ev.test_accuracy
    import json

    report = json.loads((tmp_path / "ev.json").read_text())
    assert report["mean_test_accuracy"] == pytest.approx((0.99 + 0.9 + 0.96) / 3)
    assert report["image_size"] == 32 and report["fingerprint"] == "a" * 64


def test_an_evaluator_is_refused_for_other_data():
    ev = _evaluator("a" * 64)
    ev.check_data(_source("a" * 64))
    with pytest.raises(DataError, match="trained for /data/faces, not /d/manifest.json") as err:
        ev.check_data(_source("b" * 64))
    assert "vaegan-dist evaluator train --data" in str(err.value) and "\n" not in str(err.value)


def test_the_data_fingerprint_follows_the_shards_not_the_manifest_text():
    shards = {"train": [ShardInfo("train-000000.tar", 5, "1" * 64, 10)]}
    a = Manifest("synthetic", 32, "png", ["Male"], shards, source="here")
    b = Manifest("synthetic", 32, "png", ["Male"], shards, source="copied elsewhere")
    c = Manifest("synthetic", 32, "png", ["Male"], {"train": [ShardInfo("train-000000.tar", 5, "2" * 64, 10)]})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_crafted_evaluator_file_is_refused_and_runs_nothing(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        torch.save({"format": "vaegan-dist-evaluator/1", "x": _Payload()}, f, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_evaluator(path)
    assert "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [(b"not a zip", "not a readable evaluator"),
                                              (None, "not a vaegan-dist evaluator")])
def test_damaged_or_foreign_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "x.pt"
    if content is None:
        torch.save({"format": "something-else"}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        load_evaluator(path)
    assert "\n" not in str(err.value)


def test_an_evaluator_with_wrong_weights_is_damaged_not_a_crash(tmp_path):
    state = _evaluator().state()
    state["attributes"] = ["only_one"]  # the head has 3 outputs
    torch.save(state, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="a damaged evaluator"):
        load_evaluator(tmp_path / "x.pt")
