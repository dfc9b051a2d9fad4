"""The paper's experiments end to end, as users run them on tiny runs: `edit` (attribute vectors on test
images and on photos), attribute-conditioned training and `similarity`, `pretraining`,
each checked against what an independent computation says, and their one-line refusals."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import tiny_config
from vaegan_dist.cli.main import main
from vaegan_dist.data.stream import first_images
from vaegan_dist.evaluate import load_evaluator
from vaegan_dist.evaluate.similarity import similarity_scores
from vaegan_dist.model import load_model
from vaegan_dist.train.launcher import launch

PAD = 2  # torchvision make_grid's padding


def _train(faces, root, name, cache, *extra):
    cfg = tiny_config(faces, root, name, "train.steps=4", "train.checkpoint_every=4", f"data.cache_dir={cache}", *extra)
    launch(cfg)
    return root / name


@pytest.fixture(scope="module")
def runs(faces_eval, evaluator_cache, tmp_path_factory):
    """A VAE/GAN, and conditioned VAE and GAN, 4 steps each on faces_eval."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "vaegan": _train(faces_eval, root, "vaegan", evaluator_cache),
        "cond-vae": _train(faces_eval, root, "cond-vae", evaluator_cache, "model.kind=vae",
                           "model.condition=attributes"),
        "cond-gan": _train(faces_eval, root, "cond-gan", evaluator_cache, "model.kind=gan",
                           "model.condition=attributes"),
    }


def _evaluator(cache):
    return load_evaluator(next((cache / "evaluators").glob("*.pt")))


def test_edit_writes_the_grid_and_scores_that_partition_the_images(runs, tmp_path, capsys):
    run = runs["vaegan"]
    grid, report = tmp_path / "edit.png", tmp_path / "edit.json"
    code = main(["edit", "--checkpoint", str(run), "--attribute", "Eyeglasses", "Smiling", "--scale", "-1", "1", "2",
                 "--num", "20", "--show", "3", "--vector-images", "200", "--out", str(grid), "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Eyeglasses" in out and "share of the images" in out
    with Image.open(grid) as image:  # 2 attributes x 3 images rows; original, reconstruction and 3 scales
        assert image.size == (5 * (32 + PAD) + PAD, 6 * (32 + PAD) + PAD)
    result = json.loads(report.read_text())
    assert (result["format"], result["num_images"], result["vector_images"], result["scales"]) == \
        ("vaegan-dist-edit/1", 20, 200, [-1.0, 1.0, 2.0])
    for name in ("Eyeglasses", "Smiling"):
        rows = {r["scale"]: r for r in result["results"] if r["attribute"] == name}
        assert rows[1.0]["candidates"] == rows[2.0]["candidates"]
        assert rows[-1.0]["candidates"] + rows[1.0]["candidates"] == 20  # lackers and havers split the images
        for r in rows.values():
            assert 0 <= r["changed"] <= r["candidates"]
    # The same edit, recorded for `report`, and the vectors cached beside the checkpoint and reused.
    assert json.loads((run / "results" / "edit.json").read_text()) == result
    cache = run / "checkpoint_00000004" / "attribute_vectors.pt"
    stamp = cache.stat().st_mtime_ns
    assert main(["edit", "--checkpoint", str(run), "--attribute", "Male", "--num", "4", "--vector-images", "200",
                 "--out", str(grid)]) == 0
    assert cache.stat().st_mtime_ns == stamp and "encoding up to" not in capsys.readouterr().out
    assert main(["edit", "--checkpoint", str(run), "--attribute", "Male", "--num", "4", "--vector-images", "300",
                 "--out", str(grid)]) == 0
    assert "encoding up to 300 train images" in capsys.readouterr().out  # another count: recomputed


def test_edit_takes_the_users_own_photos(runs, tmp_path, capsys):
    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 256, (90, 70, 3), dtype=np.uint8))
    photo.save(tmp_path / "me.jpg")
    photo.convert("L").save(tmp_path / "grey.png")
    grid = tmp_path / "mine.png"
    code = main(["edit", "--checkpoint", str(runs["vaegan"]), "--attribute", "Eyeglasses", "--image",
                 str(tmp_path / "me.jpg"), str(tmp_path / "grey.png"), "--vector-images", "200", "--out", str(grid)])
    assert code == 0, capsys.readouterr().err
    assert "edits of 2 images (2 files)" in capsys.readouterr().out
    with Image.open(grid) as image:
        assert image.size == (5 * (32 + PAD) + PAD, 2 * (32 + PAD) + PAD)


@pytest.mark.parametrize("args, message", [
    (["--attribute", "Wings"], "--attribute 'Wings': the data has no such attribute"),
    (["--attribute", "Male", "--scale", "0"], "--scale 0.0: must be non-zero"),
    (["--attribute", "Male", "--image", "nowhere.png"], "nowhere.png: no such file"),
])
def test_edit_refusals_are_one_line(runs, tmp_path, capsys, args, message):
    code = main(["edit", "--checkpoint", str(runs["vaegan"]), "--vector-images", "50", "--out",
                 str(tmp_path / "g.png"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "g.png").exists()


def test_edit_refuses_models_without_latent_codes(runs, tmp_path, capsys):
    for run, message in ((runs["cond-gan"], "no encoder"), (runs["cond-vae"], "attribute-conditioned model")):
        code = main(["edit", "--checkpoint", str(run), "--attribute", "Male", "--out", str(tmp_path / "g.png")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_similarity_table_matches_an_independent_computation(runs, faces_eval, evaluator_cache, tmp_path, capsys):
    out = tmp_path / "sim.json"
    code = main(["similarity", "--checkpoint", str(runs["cond-vae"]), str(runs["cond-gan"]),
                 "--num", "50", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "test set (real images)" in printed and "cond-vae" in printed and "cond-gan" in printed
    table = json.loads(out.read_text())
    assert [r["name"] for r in table["rows"]] == ["test set (real images)", "cond-vae", "cond-gan"]
    assert [r["model_kind"] for r in table["rows"]] == [None, "vae", "gan"]

    evaluator = _evaluator(evaluator_cache)
    images, labels = first_images(faces_eval, "test", 50)
    _, logits = evaluator.features_and_logits(images)
    assert table["attributes"] == evaluator.attributes  # the same data: every attribute is shared
    expected = similarity_scores(labels, logits)  # faces_eval lists its attributes in the evaluator's order
    assert table["rows"][0]["cosine"] == pytest.approx(expected["cosine"])
    assert table["rows"][0]["mse"] == pytest.approx(expected["mse"])

    model, _, _ = load_model(runs["cond-gan"])  # the GAN's row from its own faces
    generated = model.sample(50, generator=torch.Generator().manual_seed(0), y=labels)
    _, logits = evaluator.features_and_logits(generated)
    assert table["rows"][2]["cosine"] == pytest.approx(similarity_scores(labels, logits)["cosine"], abs=1e-6)
    for run in ("cond-vae", "cond-gan"):
        assert json.loads((runs[run] / "results" / "similarity.json").read_text()) == table


def test_a_conditioned_model_samples_to_order(runs, tmp_path, capsys):
    out = tmp_path / "glasses.png"
    assert main(["sample", "--checkpoint", str(runs["cond-gan"]), "--set", "Eyeglasses=1", "Male=0", "--n", "6",
                 "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (6 * (32 + PAD) + PAD, 32 + 2 * PAD)
    assert main(["sample", "--checkpoint", str(runs["vaegan"]), "--set", "Male=1", "--out", str(out)]) == 2
    assert "not conditioned on attributes" in capsys.readouterr().err
    # The other commands give a conditioned model its images' own attributes.
    data = load_model(runs["cond-vae"])[1].data.source
    assert main(["reconstruct", "--checkpoint", str(runs["cond-vae"]), "--data", data, "--n", "4",
                 "--out", str(tmp_path / "r.png")]) == 0
    assert main(["evaluate", "--checkpoint", str(runs["cond-vae"]), "--num", "16"]) == 0
    assert "vae at step 4, 16 test images" in capsys.readouterr().out


def test_a_foreign_file_where_the_vector_cache_would_go_is_left_alone(runs, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(runs["vaegan"], copy)
    foreign = copy / "checkpoint_00000004" / "attribute_vectors.pt"
    foreign.write_text("my notes")
    assert main(["edit", "--checkpoint", str(copy), "--attribute", "Male", "--num", "4", "--vector-images", "50",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert "is not an attribute-vector cache of ours; left as it is" in capsys.readouterr().out
    assert foreign.read_text() == "my notes"


def test_similarity_refuses_an_unconditioned_model(runs, capsys):
    code = main(["similarity", "--checkpoint", str(runs["vaegan"]), "--num", "20"])
    err = capsys.readouterr().err
    assert code == 2 and "not conditioned on attributes" in err and "model.condition=attributes" in err
    assert err.count("\n") == 1


def test_pretraining_table_has_every_cell_and_an_independent_majority_row(runs, faces_eval, tmp_path, capsys):
    out = tmp_path / "pre.json"
    code = main(["pretraining", "--checkpoint", str(runs["vaegan"]), "--fractions", "0.1", "1",
                 "--steps", "4", "--train-images", "200", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "fine-tuned" in capsys.readouterr().out
    table = json.loads(out.read_text())
    cells = {(r["init"], r["fraction"]): r for r in table["rows"]}
    assert set(cells) == {("majority class", 1.0), *((i, f) for i in ("scratch", "frozen", "fine-tuned")
                                                      for f in (0.1, 1.0))}
    assert cells[("scratch", 0.1)]["labels"] == 20 and cells[("frozen", 1.0)]["labels"] == 200
    for row in table["rows"]:
        assert 0 <= row["accuracy"] <= 1
    _, train_labels = first_images(faces_eval, "train", 200)
    _, test_labels = first_images(faces_eval, "test", 2000)
    majority = train_labels.float().mean(0) > 0.5
    assert cells[("majority class", 1.0)]["accuracy"] == pytest.approx(
        (test_labels.bool() == majority).float().mean().item())
    assert json.loads((runs["vaegan"] / "results" / "pretraining.json").read_text()) == table


def test_pretraining_refuses_models_without_an_unsupervised_discriminator(runs, capsys):
    for run, message in ((runs["cond-vae"], "no discriminator"), (runs["cond-gan"], "learned with labels")):
        code = main(["pretraining", "--checkpoint", str(run), "--steps", "1"])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_a_conditioned_run_resumes_only_with_the_same_attributes(runs, faces32, evaluator_cache, tmp_path, capsys):
    """faces_eval and faces32 list the same attribute names, so the shapes would load: the names are checked."""
    import shutil

    copy = tmp_path / "cond-vae"
    shutil.copytree(runs["cond-vae"], copy)
    state_file = copy / "checkpoint_00000004" / "state.pt"
    state = torch.load(state_file, weights_only=True)
    state["attributes"] = list(reversed(state["attributes"]))
    torch.save(state, state_file)
    code = main(["train", "--preset", "smoke", f"data.source={faces32}",
                 f"train.storage_path={tmp_path}", "train.name=cond-vae", "train.steps=6", "train.workers=0",
                 "model.kind=vae", "model.condition=attributes", "model.width=0.125", "model.encoder_fc=32",
                 "model.discriminator_fc=16", "model.latent_dim=8", "data.batch_size=8", "data.loader_workers=0",
                 "train.eval_every=0", f"data.cache_dir={evaluator_cache}"])
    err = capsys.readouterr().err
    assert code == 2 and "the checkpoint is conditioned on attributes" in err, err
    assert str(faces32) not in (copy / "config.yaml").read_text()  # refused before the run's config is rewritten


def test_similarity_follows_attributes_by_name_when_the_evaluator_lists_them_in_another_order(
        runs, evaluator_cache, tmp_path, capsys):
    """The same evaluator with its attributes (and head rows) reversed must give the same table: columns are
    matched by name between data, model and evaluator, never by position."""
    original = _evaluator(evaluator_cache)
    state = original.state()
    state["attributes"] = list(reversed(state["attributes"]))
    state["network"] = {k: (v.flip(0) if k.startswith("head.") else v) for k, v in state["network"].items()}
    torch.save(state, tmp_path / "reversed.pt")
    tables = []
    for extra in ([], ["--evaluator", str(tmp_path / "reversed.pt")]):
        out = tmp_path / f"sim{len(extra)}.json"
        assert main(["similarity", "--checkpoint", str(runs["cond-gan"]), "--num", "30", "--json",
                     str(out), *extra]) == 0, capsys.readouterr().err
        tables.append(json.loads(out.read_text()))
    assert tables[1]["attributes"] == list(reversed(tables[0]["attributes"]))
    for a, b in zip(tables[0]["rows"], tables[1]["rows"]):
        assert a["cosine"] == pytest.approx(b["cosine"], abs=1e-6) and a["mse"] == pytest.approx(b["mse"], abs=1e-6)


def test_the_same_checkpoint_spelled_two_ways_is_refused(runs, capsys):
    run = runs["cond-vae"]
    code = main(["similarity", "--checkpoint", str(run), f"{run}/checkpoint_00000004/state.pt"])
    err = capsys.readouterr().err
    assert code == 2 and "the same checkpoint is named twice" in err


def test_edit_refuses_the_same_file_for_grid_and_scores(runs, tmp_path, capsys):
    same = tmp_path / "same.png"
    code = main(["edit", "--checkpoint", str(runs["vaegan"]), "--attribute", "Male", "--out", str(same),
                 "--json", str(same)])
    assert code == 2 and "the same file as --out" in capsys.readouterr().err and not same.exists()


def test_the_vector_cache_belongs_to_the_weights_and_a_damaged_one_is_recomputed(runs, tmp_path, capsys):
    import shutil

    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(runs["vaegan"] / "checkpoint_00000004" / "state.pt", flat / "state.pt")
    args = ["edit", "--checkpoint", str(flat / "state.pt"), "--attribute", "Male", "--num", "4",
            "--vector-images", "50", "--out", str(tmp_path / "g.png")]
    assert main(args) == 0 and "encoding up to 50" in capsys.readouterr().out
    assert main(args) == 0 and "encoding up to 50" not in capsys.readouterr().out  # cached
    # Other weights at the same path: their own vectors, not the cache's.
    state = torch.load(flat / "state.pt", weights_only=True)
    state["model"] = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in state["model"].items()}
    torch.save(state, flat / "state.pt")
    assert main(args) == 0 and "encoding up to 50" in capsys.readouterr().out
    # A cache of ours with the right key but a damaged tensor is recomputed, not trusted.
    cache = torch.load(flat / "attribute_vectors.pt", weights_only=True)
    cache["vectors"] = cache["vectors"][:, :3]
    torch.save(cache, flat / "attribute_vectors.pt")
    assert main(args) == 0 and "encoding up to 50" in capsys.readouterr().out
    assert torch.load(flat / "attribute_vectors.pt", weights_only=True)["vectors"].shape[1] == 8


def test_results_are_recorded_only_in_a_results_directory_of_ours(runs, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(runs["vaegan"], copy, ignore=shutil.ignore_patterns("results"))
    assert main(["evaluate", "--checkpoint", str(copy), "--num", "16"]) == 0
    recorded = json.loads((copy / "results" / "metrics.json").read_text())
    assert recorded["format"] == "vaegan-dist-metrics/1" and recorded["num"] == 16
    (copy / "results" / "metrics.json").write_text("my own notes")  # a user's file in our directory: kept
    assert main(["evaluate", "--checkpoint", str(copy), "--num", "16"]) == 0
    assert "is not a result of ours; left as it is" in capsys.readouterr().out
    assert (copy / "results" / "metrics.json").read_text() == "my own notes"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(copy / "results")
    (copy / "results").symlink_to(elsewhere)  # never written through
    assert main(["evaluate", "--checkpoint", str(copy), "--num", "16"]) == 0
    assert "not a results directory of ours" in capsys.readouterr().out and not any(elsewhere.iterdir())
