"""Evaluation as users meet it: an evaluator trained on a data set's own attributes, `vaegan-dist evaluate`
for every model kind, evaluation during training in TensorBoard, and refusals in one line."""

import json
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import tiny_config
from vaegan_dist.cli.main import main
from vaegan_dist.data.stream import first_images
from vaegan_dist.evaluate import METRICS, cached_evaluator_path, load_evaluator
from vaegan_dist.train.launcher import launch
from vaegan_dist.train.resolve import resolve_run

JSON_KEYS = {*METRICS, "num", "split", "step", "model_kind"}


def test_the_evaluator_beats_chance_by_a_wide_margin(faces_eval, evaluator_cache):
    path = next((evaluator_cache / "evaluators").glob("*.pt"))
    evaluator = load_evaluator(path)
    _, attrs = first_images(faces_eval, "test", 1000)
    prevalence = attrs.float().mean(0)
    majority = torch.maximum(prevalence, 1 - prevalence)  # accuracy of always guessing the commoner label
    accuracy = torch.tensor([evaluator.test_accuracy[a] for a in evaluator.attributes])
    balanced = (prevalence > 0.3) & (prevalence < 0.7)  # Male, Smiling, Mouth_Slightly_Open, ...
    assert balanced.sum() >= 3
    assert accuracy[balanced].mean() >= majority[balanced].mean() + 0.10, (accuracy, majority)
    assert accuracy.mean() > majority.mean() + 0.05
    assert json.loads(path.with_suffix(".json").read_text())["attributes"] == evaluator.attributes


def _train(faces, tmp_path, kind, cache, *extra):
    cfg = tiny_config(faces, tmp_path, kind, f"model.kind={kind}", "train.steps=4", "train.checkpoint_every=4",
                      f"data.cache_dir={cache}", *extra)
    launch(cfg)
    return tmp_path / kind


@pytest.mark.parametrize("kind", ["vaegan", "vae", "vae_disl", "gan"])
def test_every_kind_trains_and_evaluates_to_json_with_exactly_the_metric_keys(kind, faces_eval, evaluator_cache,
                                                                              tmp_path, capsys):
    run = _train(faces_eval, tmp_path, kind, evaluator_cache)
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(run), "--num", "64", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == JSON_KEYS
    assert (result["model_kind"], result["step"], result["num"], result["split"]) == (kind, 4, 64, "test")
    for key in ("fd", "sharpness_ratio", "precision", "recall"):
        assert isinstance(result[key], float), key
    assert result["fid"] is None  # no Inception weights given
    has_encoder, has_dis = kind != "gan", kind != "vae"
    for key in ("fd_recon", "attr_agreement", "pixel_mse"):
        assert (result[key] is not None) == has_encoder, key
    assert (result["feature_mse"] is not None) == (has_encoder and has_dis)
    assert 0 <= result["precision"] <= 1 and 0 <= result["recall"] <= 1
    table = capsys.readouterr().out
    assert "lower is better" in table and f"{kind} at step 4" in table

    assert main(["sample", "--checkpoint", str(run), "--out", str(tmp_path / "s.png"), "--n", "4"]) == 0
    code = main(["reconstruct", "--checkpoint", str(run), "--data", str(faces_eval), "--out",
                 str(tmp_path / "r.png"), "--n", "4"])
    if kind == "gan":
        assert code == 2
        err = capsys.readouterr().err
        assert "'gan' model has no encoder, so it cannot reconstruct" in err and err.count("\n") == 1
    else:
        assert code == 0


def test_eval_metrics_appear_in_tensorboard_and_in_the_checkpoint(faces_eval, evaluator_cache, tmp_path, capsys):
    run = _train(faces_eval, tmp_path, "vaegan", evaluator_cache, "train.eval_every=2", "train.eval_samples=32",
                 "train.log_every=2")
    out = capsys.readouterr().out
    assert "eval  step       2 | 32 held-out images | fd " in out
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"eval/fd", "eval/kid", "eval/kid_std", "eval/fd_recon", "eval/attr_agreement", "eval/sharpness_ratio",
                "eval/precision", "eval/recall", "perf/eval_share"}
    assert expected <= tags
    assert [e.step for e in events.Scalars("eval/fd")] == [2, 4]
    from vaegan_dist.model import load_state

    assert ({k for k in load_state(run)["metrics"] if k.startswith("eval/")}
            == {t for t in expected if t.startswith("eval/")})


def test_training_on_data_without_an_evaluator_warns_and_trains(faces32, tmp_path, capsys):
    run = _train(faces32, tmp_path, "vaegan", tmp_path / "empty-cache", "train.eval_every=2")
    out = capsys.readouterr().out
    assert f"warning: no evaluator for {faces32}: train one with `vaegan-dist evaluator train --data {faces32}`" in out
    assert (run / "checkpoint_00000004").is_dir()


def test_evaluate_refuses_data_its_evaluator_was_not_trained_for(faces_eval, faces32, evaluator_cache, tmp_path,
                                                                 capsys):
    run = _train(faces_eval, tmp_path, "vaegan", evaluator_cache)
    evaluator = next((evaluator_cache / "evaluators").glob("*.pt"))
    code = main(["evaluate", "--checkpoint", str(run), "--data", str(faces32), "--evaluator", str(evaluator)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"this evaluator was trained for {faces_eval}" in err and "vaegan-dist evaluator train --data" in err
    code = main(["evaluate", "--checkpoint", str(run), "--data", str(faces32)])  # nothing cached for faces32
    err = capsys.readouterr().err
    assert code == 2 and f"no evaluator for {faces32}: train one with" in err and err.count("\n") == 1


def test_the_built_in_faces_get_an_evaluator_once_and_it_is_reused(tmp_path):
    cfg = tiny_config("", tmp_path, "builtin", f"data.cache_dir={tmp_path / 'cache'}", "data.synthetic_samples=240",
                      "train.eval_every=2")
    job = resolve_run(cfg)
    cached = cached_evaluator_path(tmp_path / "cache", job.data.fingerprint)
    assert job.evaluator is not None and cached.is_file() and cached.with_suffix(".json").is_file()
    stamp = cached.stat().st_mtime_ns
    started = time.monotonic()
    again = resolve_run(cfg)
    assert time.monotonic() - started < 10 and cached.stat().st_mtime_ns == stamp  # loaded, not retrained
    assert again.evaluator["fingerprint"] == job.evaluator["fingerprint"]


def test_evaluator_train_cli_writes_the_weights_and_the_report(faces32, tmp_path, capsys):
    out = tmp_path / "ev.pt"
    assert main(["evaluator", "train", "--data", str(faces32), "--out", str(out), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "test accuracy per attribute:" in printed and "mean" in printed
    report = json.loads(out.with_suffix(".json").read_text())
    assert load_evaluator(out).attributes == report["attributes"]
    assert main(["evaluator", "train", "--data", str(faces32), "--out", str(tmp_path / "ev.txt")]) == 2
    assert "an evaluator file (its report is written beside it as .json); its name ends in .pt" in \
        capsys.readouterr().err
    (tmp_path / "mine.json").write_text('{"my": "notes"}')
    assert main(["evaluator", "train", "--data", str(faces32), "--out", str(tmp_path / "mine.pt")]) == 2
    assert "mine.json exists and is not an evaluator report" in capsys.readouterr().err
    assert (tmp_path / "mine.json").read_text() == '{"my": "notes"}' and not (tmp_path / "mine.pt").exists()


def test_fid_from_a_local_inception_weights_file(faces_eval, evaluator_cache, tmp_path, capsys):
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    weights = tmp_path / "inception.pth"
    torch.save(inception_v3(weights=None, aux_logits=True, init_weights=True).state_dict(), weights)
    run = _train(faces_eval, tmp_path, "vaegan", evaluator_cache)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--checkpoint", str(run), "--num", "16", "--json", str(out), "--batch", "8",
                 "--inception-weights", str(weights)]) == 0
    one = json.loads(out.read_text())
    assert isinstance(one["fid"], float) and one["fid"] > 0
    # Two processes sharing the batches (16 images in batches of 8: one each) give one process's numbers.
    shared = tmp_path / "shared.json"
    assert main(["evaluate", "--checkpoint", str(run), "--num", "16", "--json", str(shared), "--workers", "2",
                 "--batch", "8", "--inception-weights", str(weights)]) == 0
    two = json.loads(shared.read_text())
    assert two.keys() == one.keys()
    for key, value in one.items():
        assert two[key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    assert main(["evaluate", "--checkpoint", str(run), "--inception-weights", str(tmp_path / "bad.pth")]) == 2
    err = capsys.readouterr().err
    assert "bad.pth: not a readable weights file" in err and err.count("\n") == 1


def test_too_few_held_out_images_is_one_line_before_training_and_in_evaluate(tmp_path, capsys):
    """30 faces split 80/10/10: 3 valid and 3 test images, too few for precision/recall's 3 neighbours."""
    from vaegan_dist.data.synthetic import prepare_synthetic
    from vaegan_dist.errors import DataError

    data = tmp_path / "tiny"
    prepare_synthetic(data, num=30, size=32, seed=1, workers=1, shard_samples=10, progress=False)
    evaluator = tmp_path / "ev.pt"
    assert main(["evaluator", "train", "--data", str(data), "--out", str(evaluator), "--epochs", "1"]) == 0
    cfg = tiny_config(data, tmp_path, "few", "train.eval_every=2", f"train.evaluator={evaluator}")
    with pytest.raises(DataError, match=r"split 'valid' has 3 images; evaluation needs more than 3 \(or set "
                                        r"train.eval_every=0\)"):
        resolve_run(cfg)
    assert not (tmp_path / "few").exists()
    launch(tiny_config(data, tmp_path, "few", "train.steps=2"))  # without evaluation it trains
    capsys.readouterr()
    code = main(["evaluate", "--checkpoint", str(tmp_path / "few"), "--evaluator", str(evaluator)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "only 3 images; the metrics need more than 3" in err


def test_evaluating_the_weight_average_leaves_every_trained_network_in_training_mode(faces_eval, evaluator_cache,
                                                                                    tmp_path, monkeypatch):
    """Evaluation and grids put the model they show in eval mode and back; with weight averaging that model is
    the average, and the live networks must stay in training mode at every step (a shared discriminator was
    once left in eval mode, batch norm on running statistics, between an evaluation and the next grid)."""
    import vaegan_dist.train.loop as loop

    modes = []

    class Recording(loop.TrainStep):
        def __call__(self, images, step, **kwargs):
            modes.append({name: net.training for name, net in self.networks.items()})
            return super().__call__(images, step, **kwargs)

    monkeypatch.setattr(loop, "TrainStep", Recording)
    _train(faces_eval, tmp_path, "vaegan", evaluator_cache, "optim.ema_halflife_kimg=0.1", "train.eval_every=1",
           "train.image_every=3", "train.eval_samples=32", "train.steps=5")
    assert len(modes) == 5 and all(all(m.values()) for m in modes), modes
