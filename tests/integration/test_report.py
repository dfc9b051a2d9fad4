"""`vaegan-dist report`: the page as a parser and a browser see it, against fake run directories written here
(and one real tiny run), with the values to expect worked out from the files themselves."""

import base64
import hashlib
import io
import json
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from tests.browser import chromium
from tests.conftest import tiny_config
from vaegan_dist.cli.main import main
from vaegan_dist.evaluate.model_metrics import LOWER_IS_BETTER, METRICS
from vaegan_dist.evaluate.report import reading as report_reading
from vaegan_dist.evaluate.report import write_report
from vaegan_dist.model.store import FORMAT as CHECKPOINT_FORMAT
from vaegan_dist.model.store import RUN_MARKER

VOID = {"meta", "img", "br", "link", "hr", "input"}
DATA_URI = "data:image/png;base64,"


class Page(HTMLParser):
    """What the tests look at: tag balance, the images, the summary table's cells, warnings, all text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.images: list[dict] = []
        self.cells: dict[tuple[str, int], str] = {}  # (summary row, run index) -> text
        self.bold: set[tuple[str, int]] = set()
        self.warnings: list[str] = []
        self.texts: list[str] = []
        self._row: str | None = None
        self._cell: tuple[str, int] | None = None
        self._warning: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "img":
            self.images.append(attrs)
        if tag == "tr":
            self._row = attrs.get("data-metric") or attrs.get("data-setting")
        if tag == "td" and self._row is not None and "data-run" in attrs:
            self._cell = (self._row, int(attrs["data-run"]))
            self.cells[self._cell] = ""
        if tag == "strong" and self._cell is not None:
            self.bold.add(self._cell)
        if tag == "p" and "data-warning" in attrs:
            self._warning = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()
        if tag == "td":
            self._cell = None
        if tag == "tr":
            self._row = None
        if tag == "p" and self._warning is not None:
            self.warnings.append("".join(self._warning))
            self._warning = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._cell is not None:
            self.cells[self._cell] += data
        if self._warning is not None:
            self._warning.append(data)

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def figures(self) -> list[tuple[int, str]]:
        return sorted((int(i["data-run"]), i["data-figure"]) for i in self.images)

    def image(self, run: int, figure: str) -> dict:
        (found,) = [i for i in self.images if (int(i["data-run"]), i["data-figure"]) == (run, figure)]
        return found


def png(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A PNG of random colours (never one flat colour: the screenshot test relies on it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return path


def make_run(root: Path, name: str, kind: str = "vaegan", gamma: float = 0.01, steps: int = 100,
             grid_steps=(50, 100), results: dict | None = None, seed: int = 0) -> Path:
    """A run directory as `vaegan-dist train` leaves it (no checkpoint), plus the given results/ files."""
    run = root / name
    run.mkdir(parents=True)
    (run / RUN_MARKER).write_text("")
    config = {"preset": "smoke", "model": {"kind": kind, "condition": "none", "latent_dim": 8},
              "objective": {"gamma": gamma}, "train": {"steps": steps, "name": name}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for k, step in enumerate(grid_steps):  # older grids are smaller: the page must show the newest
        png(run / "samples" / f"samples_{step:08d}.png", (40 + 60 * k, 20 + 10 * k), seed + k)
        if kind != "gan":
            png(run / "samples" / f"reconstructions_{step:08d}.png", (40 + 60 * k, 40 + 10 * k), seed + 10 + k)
    for file, content in (results or {}).items():
        (run / "results").mkdir(exist_ok=True)
        path = run / "results" / file
        if isinstance(content, Path):
            shutil.copy(content, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        else:
            path.write_text(json.dumps(content))
    return run


def metrics(step: int, kind: str, **values) -> dict:
    return {**dict.fromkeys(METRICS), **values, "num": 64, "split": "test", "step": step, "model_kind": kind}


def edit_result(attribute: str = "Eyeglasses", both_ways: bool = False) -> dict:
    # both_ways: the reconstruction's change of the read, recorded since issue 26 (older files lack it)
    reconstruction = [{"attribute": attribute, "having": 3, "lost": 1, "lacking": 21, "gained": 3,
                       "changed_fraction": 4 / 24}] if both_ways else []
    return {"reconstruction": reconstruction,
            "format": "vaegan-dist-edit/1", "checkpoint": "/x/state.pt", "step": 100, "model_kind": "vaegan",
            "images": "test split of /data", "num_images": 24, "vector_images": 192, "scales": [-1.0, 1.5],
            "results": [{"attribute": attribute, "scale": -1.0, "candidates": 3, "changed": 1, "fraction": 1 / 3},
                        {"attribute": attribute, "scale": 1.5, "candidates": 12, "changed": 5, "fraction": 5 / 12},
                        {"attribute": "Smiling", "scale": -1.0, "candidates": 0, "changed": 0, "fraction": None},
                        {"attribute": "Smiling", "scale": 1.5, "candidates": 10, "changed": 10, "fraction": 1.0},
                        # an attribute the evaluator does not know: nothing to judge the edit by
                        {"attribute": "Wings", "scale": -1.0, "candidates": None, "changed": None, "fraction": None},
                        {"attribute": "Wings", "scale": 1.5, "candidates": None, "changed": None, "fraction": None}]}


def similarity_result() -> dict:
    return {"format": "vaegan-dist-similarity/1", "split": "test", "num": 24, "attributes": ["Male", "Smiling"],
            "rows": [{"name": "test set (real images)", "model_kind": None, "step": None, "checkpoint": None,
                      "cosine": 0.9, "mse": 0.05},
                     {"name": "cvae", "model_kind": "vae", "step": 2000, "checkpoint": "/a", "cosine": 0.41,
                      "mse": 0.3},
                     {"name": "cvaegan", "model_kind": "vaegan", "step": 2000, "checkpoint": "/b", "cosine": 0.52,
                      "mse": 0.35}]}


def pretraining_result() -> dict:
    rows = [{"init": "majority class", "fraction": 1.0, "labels": 1920, "accuracy": 0.55}]  # a baseline row first
    rows += [{"init": init, "fraction": f, "labels": n, "accuracy": acc}
            for init, accs in (("scratch", (0.6, 0.7, 0.8)), ("frozen", (0.65, 0.72, 0.75)),
                               ("fine-tuned", (0.7, 0.78, 0.85)))
            for f, n, acc in zip((0.01, 0.1, 1.0), (19, 192, 1920), accs)]
    return {"format": "vaegan-dist-pretraining/1", "checkpoint": "/x", "step": 100, "model_kind": "vaegan",
            "metric": "mean attribute accuracy", "test_images": 24, "label_fractions": [0.01, 0.1, 1.0],
            "rows": rows}


def add_checkpoint(run: Path, step: int, saved: dict) -> None:
    (run / f"checkpoint_{step:08d}").mkdir()
    torch.save({"format": CHECKPOINT_FORMAT, "step": step, "model": {}, "config": {}, "metrics": saved},
               run / f"checkpoint_{step:08d}" / "state.pt")


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def three_runs(tmp_path) -> list[Path]:
    """A VAE/GAN with every result, a VAE with metrics.json only, a GAN with only training's evaluation."""
    runs = tmp_path / "runs"
    edit_grid = png(tmp_path / "edit.png", (70, 100), 7)
    full = make_run(runs, "vaegan-full", results={
        "metrics.json": metrics(100, "vaegan", fd=2.5, fd_recon=1.0, attr_agreement=0.8, pixel_mse=0.04,
                                feature_mse=0.2, sharpness_ratio=0.9, precision=0.6, recall=0.5),
        "edit.png": edit_grid, "edit.json": edit_result(both_ways=True), "similarity.json": similarity_result(),
        "pretraining.json": pretraining_result()}, seed=1)
    vae = make_run(runs, "vae-plain", kind="vae", gamma=1.0, results={
        "metrics.json": metrics(100, "vae", fd=4.0, fd_recon=0.5, attr_agreement=0.9, pixel_mse=0.02,
                                sharpness_ratio=0.5, precision=0.3, recall=0.7)}, seed=2)
    gan = make_run(runs, "gan-only", kind="gan", steps=200, seed=3)
    add_checkpoint(gan, 150, {"eval/fd": 1.5, "eval/sharpness_ratio": 1.2, "eval/precision": 0.6,
                              "eval/recall": 0.4, "loss/l_gan": 0.7})
    return [full, vae, gan]


def test_every_figure_is_embedded_once_from_the_newest_grid_and_decodes_to_its_file(three_runs, tmp_path):
    before = {run: snapshot(run) for run in three_runs}
    out = write_report(three_runs, tmp_path / "report.html", title="gamma sweep")
    page = Page(out.read_text())
    assert not page.problems and not page.stack, (page.problems, page.stack)
    assert [t for t, _ in page.tags].count("html") == 1 and [t for t, _ in page.tags].count("body") == 1
    assert ("meta", {"name": "generator", "content": "vaegan-dist report"}) in page.tags
    assert "gamma sweep" in page.text
    full, vae, gan = three_runs
    expected = {(0, "samples"): full / "samples/samples_00000100.png",
                (0, "reconstructions"): full / "samples/reconstructions_00000100.png",
                (0, "edit"): full / "results/edit.png",
                (1, "samples"): vae / "samples/samples_00000100.png",
                (1, "reconstructions"): vae / "samples/reconstructions_00000100.png",
                (2, "samples"): gan / "samples/samples_00000100.png"}
    assert page.figures() == sorted(expected)  # each exactly once, nothing claimed that is not there
    for (run, figure), file in expected.items():
        img = page.image(run, figure)
        assert img["alt"] and img["id"] == f"run{run}-{figure}"
        assert img["src"].startswith(DATA_URI)
        data = base64.b64decode(img["src"][len(DATA_URI):], validate=True)
        assert data == file.read_bytes()
        assert Image.open(io.BytesIO(data)).size == Image.open(file).size
    assert "no encoder" in page.text  # the GAN's reconstruction column
    assert {run: snapshot(run) for run in three_runs} == before  # run directories are only read
    assert "http://" not in out.read_text() and "https://" not in out.read_text()


def test_summary_shows_settings_and_the_best_value_of_each_metric_in_bold(three_runs, tmp_path):
    page = Page(write_report(three_runs, tmp_path / "report.html").read_text())
    assert [page.cells[("model kind", i)] for i in range(3)] == ["vaegan", "vae", "gan"]
    assert [page.cells[("gamma", i)] for i in range(3)] == ["0.01", "1.0", "0.01"]
    assert page.cells[("steps", 2)] == "150 of 200"  # the GAN's checkpoint, short of train.steps
    assert "from training's last evaluation" in page.cells[("metrics", 2)]
    # What each run measured, read back from the files as a user would, and the best worked out here.
    values = []
    for run in three_runs:
        file = run / "results" / "metrics.json"
        if file.exists():
            values.append(json.loads(file.read_text()))
        else:
            saved = torch.load(next(run.glob("checkpoint_*/state.pt")), weights_only=True)["metrics"]
            values.append({k.removeprefix("eval/"): v for k, v in saved.items() if k.startswith("eval/")})
    for name in METRICS:
        known = {i: v[name] for i, v in enumerate(values) if v.get(name) is not None}
        if name == "sharpness_ratio":
            target = min(known.values(), key=lambda v: abs(v - 1), default=None)
        else:
            target = (min if name in LOWER_IS_BETTER else max)(known.values(), default=None)
        best = {i for i, v in known.items() if v == target} if len(known) >= 2 else set()  # ties: all bold
        assert {(name, i) for i in best} == {c for c in page.bold if c[0] == name}, name
        for i in range(3):
            shown = page.cells[(name, i)]
            assert shown == ("n/a" if values[i].get(name) is None else f"{values[i][name]:.4g}")
    assert ("fd", 2) in page.bold and ("recall", 1) in page.bold and ("precision", 0) in page.bold
    assert ("precision", 2) in page.bold  # a tie: both are bold
    assert ("sharpness_ratio", 0) in page.bold and ("sharpness_ratio", 2) not in page.bold  # 0.9 beats 1.2


def test_result_tables_and_what_was_not_run(three_runs, tmp_path):
    text = write_report(three_runs, tmp_path / "report.html").read_text()
    page = Page(text)
    assert [a.get("data-result") for t, a in page.tags if t == "table" and "data-result" in a] == \
           ["edit", "similarity", "pretraining"]  # only the full run has them
    # edit: rows attributes, columns scales, the fraction with changed/candidates beneath, null as n/a
    assert "+1.5" in page.text and "-1" in page.text
    assert "42%5/12" in page.text and "33%1/3" in page.text and "n/a0/0" in page.text and "100%10/10" in page.text
    # and the reconstruction's own change of the read, both ways, in a last column (n/a where not recorded)
    assert "reconstruction (read changed, both ways)" in page.text
    assert "17%lost on 1/3 that have it, gained on 3/21 that lack it" in page.text
    assert "100%10/10n/a" in page.text  # Smiling has no reconstruction row
    # similarity like the paper's Table 1, pretraining with label counts in the columns
    assert "test set (real images)" in page.text and "cvaegan" in page.text
    assert "1% (19 labels)" in page.text and "100% (1920 labels)" in page.text and "85.0%" in page.text
    headers = [h for h in page.text.split("init \\ labels", 1)[1].split("labels)")[:3]]
    assert [h.split("(")[0].strip() for h in headers] == ["1%", "10%", "100%"]  # in order of the fraction
    assert "majority class——55.0%" in page.text and "Wingsn/an/a" in page.text
    assert page.text.count("edit: not run") == 2 and page.text.count("similarity: not run") == 2
    assert page.text.count("pretraining: not run") == 2
    assert not page.warnings


def test_a_run_without_results_or_metrics_says_so(tmp_path):
    run = make_run(tmp_path, "bare", grid_steps=())
    page = Page(write_report([run], tmp_path / "r.html").read_text())
    assert page.cells[("metrics", 0)] == "no metrics"
    assert all(page.cells[(name, 0)] == "n/a" for name in METRICS)
    assert "no sample grid yet" in page.text and "no reconstruction grid yet" in page.text
    assert page.text.count("not run for any of these runs") == 3
    assert page.images == [] and not page.bold and not page.warnings


@pytest.mark.parametrize("file, content, why", [
    ("metrics.json", "{not json", "not readable JSON"),
    ("metrics.json", json.dumps({"fd": "low"}), "fd: not a number or null"),
    ("edit.json", json.dumps({**edit_result(), "format": "vaegan-dist-edit/9"}), "format 'vaegan-dist-edit/9'"),
    ("similarity.json", json.dumps({**similarity_result(), "rows": [{"name": "x", "cosine": "high"}]}),
     "rows[0].cosine: 'high' is not a number"),
    ("pretraining.json", json.dumps({**pretraining_result(), "step": None}), "step: None is not a whole number"),
    ("edit.json", json.dumps({k: v for k, v in edit_result().items() if k != "scales"}), "scales: missing"),
    ("edit.json", json.dumps({**edit_result(), "results": [{**edit_result()["results"][0], "scale": float("nan")}]}),
     "results[0].scale: nan is not a finite number"),
    ("pretraining.json", json.dumps([1, 2]), "not a JSON object"),
    ("edit.json", b"\xff\xfe{}", "not readable JSON"),  # not UTF-8
    ("edit.json", json.dumps({**edit_result(both_ways=True), "reconstruction": [
        {**edit_result(both_ways=True)["reconstruction"][0], "lost": 5}]}), "reconstruction[0]: lost 5 of 3"),
    ("edit.json", json.dumps({**edit_result(both_ways=True), "reconstruction": [
        {**edit_result(both_ways=True)["reconstruction"][0], "changed_fraction": 7.5}]}), "not in [0, 1]"),
])
def test_a_malformed_result_is_one_warning_and_the_rest_still_renders(tmp_path, file, content, why):
    bad = make_run(tmp_path, "bad", results={file: content})
    good = make_run(tmp_path, "good", results={"similarity.json": similarity_result()})
    page = Page(write_report([bad, good], tmp_path / "r.html").read_text())
    assert len(page.warnings) == 1
    assert str(bad / "results" / file) in page.warnings[0] and why in page.warnings[0]
    assert page.figures() == [(0, "reconstructions"), (0, "samples"), (1, "reconstructions"), (1, "samples")]
    assert "cvaegan" in page.text  # the good run's table


def test_a_broken_config_is_a_warning(tmp_path):
    run = make_run(tmp_path, "run")
    (run / "config.yaml").write_text("model: [unclosed\n")
    page = Page(write_report([run], tmp_path / "r.html").read_text())
    assert len(page.warnings) == 1 and "config.yaml: not readable YAML" in page.warnings[0]
    assert page.cells[("model kind", 0)] == "unknown" and len(page.images) == 2


def test_text_from_files_is_escaped(tmp_path):
    sneaky = '<script>alert("x")</script>'
    edit = edit_result(attribute=sneaky)
    similarity = similarity_result()
    similarity["rows"][1]["name"] = '"><img src=x onerror=alert(1)>'
    run = make_run(tmp_path, "a<b>&c", results={"edit.json": edit, "similarity.json": similarity})
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"kind": "<i>vae</i>", "condition": "&amp;"}}))
    text = write_report([run], tmp_path / "r.html", title="<b>my</b> runs").read_text()
    page = Page(text)
    assert not page.problems and not page.stack
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "b" not in tags and "i" not in tags
    assert len(page.images) == 2 and all(i["src"].startswith(DATA_URI) for i in page.images)
    for raw in ("a<b>&c", sneaky, '"><img src=x onerror=alert(1)>', "<i>vae</i>", "&amp;", "<b>my</b> runs"):
        assert raw in page.text  # shown as text, exactly as written
    assert "a&lt;b&gt;&amp;c" in text and "&amp;amp;" in text
    assert "both ways" not in page.text  # an edit.json from before the column has none


def test_a_large_image_is_a_note(tmp_path, monkeypatch):
    run = make_run(tmp_path, "run")
    monkeypatch.setattr(report_reading, "MAX_FILE_BYTES", 100)
    page = Page(write_report([run], tmp_path / "r.html").read_text())
    assert page.images == [] and page.text.count("not embedded") == 2


def test_the_newest_checkpoint_metrics_when_there_is_no_metrics_json(tmp_path):
    run = make_run(tmp_path, "run")
    add_checkpoint(run, 10, {"eval/fd": 9.0})
    add_checkpoint(run, 20, {"eval/fd": 3.25, "eval/recall": float("nan")})
    page = Page(write_report([run], tmp_path / "r.html").read_text())
    assert page.cells[("fd", 0)] == "3.25" and page.cells[("recall", 0)] == "n/a"
    assert page.cells[("metrics", 0)] == "step 20 (from training's last evaluation)"


def test_an_unreadable_checkpoint_is_a_warning_and_odd_grid_names_are_ignored(tmp_path):
    import zipfile

    run = make_run(tmp_path, "run")
    (run / "checkpoint_00000030").mkdir()
    with zipfile.ZipFile(run / "checkpoint_00000030" / "state.pt", "w") as z:  # a zip, but not torch.save's
        z.writestr("junk", "not a checkpoint")
    png(run / "samples" / "samples_final.png", (300, 300), 9)
    page = Page(write_report([run], tmp_path / "r.html").read_text())
    assert len(page.warnings) == 1 and "checkpoint_00000030/state.pt: not a readable checkpoint" in page.warnings[0]
    assert page.cells[("metrics", 0)] == "no metrics"
    assert page.image(0, "samples")["width"] == str(2 * 100)  # samples_00000100.png (100 px), not the odd name


def test_a_real_training_run(faces32, tmp_path, capsys):
    cfg = tiny_config(faces32, tmp_path, "real", "train.steps=4")
    from vaegan_dist.train.launcher import launch

    run = launch(cfg)
    capsys.readouterr()  # training's progress lines
    gan = make_run(tmp_path, "gan", kind="gan")
    out = tmp_path / "report.html"
    assert main(["report", "--runs", str(run), str(gan), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out.resolve()}"
    page = Page(out.read_text())
    assert page.figures() == [(0, "reconstructions"), (0, "samples"), (1, "samples")]
    for figure in ("samples", "reconstructions"):
        (file,) = (run / "samples").glob(f"{figure}_00000004.png")
        data = base64.b64decode(page.image(0, figure)["src"][len(DATA_URI):])
        assert data == file.read_bytes()
    assert page.cells[("steps", 0)] == "4" and page.cells[("model kind", 0)] == "vaegan"
    assert page.cells[("metrics", 0)] == "no metrics"  # train.eval_every=0
    assert main(["report", "--runs", str(run), "--out", str(out), "--title", "again"]) == 0  # our own: replaced
    assert "again" in Page(out.read_text()).text


def _error_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    run = make_run(tmp_path, "run")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "link").symlink_to(run)
    (tmp_path / "a_dir.html").mkdir()
    (tmp_path / "notes.html").write_text("<html>my own notes</html>")
    out = str(tmp_path / "r.html")
    return {
        "missing run": (["--runs", str(tmp_path / "nope"), "--out", out], f"{tmp_path / 'nope'}: no such run"),
        "foreign run": (["--runs", str(tmp_path / "foreign"), "--out", out], "not a vaegan-dist run directory"),
        "run twice": (["--runs", str(run), str(tmp_path / "link"), "--out", out], "is given twice"),
        "too many": (["--runs", *[str(run)] * 33, "--out", out], "at most 32"),
        "out a dir": (["--runs", str(run), "--out", str(tmp_path / "a_dir.html")], "is a directory"),
        "out no parent": (["--runs", str(run), "--out", str(tmp_path / "no" / "r.html")],
                          "output directory does not exist"),
        "out not html": (["--runs", str(run), "--out", str(tmp_path / "r.png")], "ends in .html or .htm"),
    }


@pytest.mark.parametrize("case", ["missing run", "foreign run", "run twice", "too many", "out a dir",
                                  "out no parent", "out not html"])
def test_refusals_are_one_line_and_write_nothing(case, tmp_path, capsys):
    args, message = _error_cases(tmp_path)[case]
    before = snapshot(tmp_path)
    assert main(["report", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("vaegan-dist report: error: ") and message in captured.err
    assert captured.err.strip().count("\n") == 0 and captured.out == ""
    assert snapshot(tmp_path) == before  # notes.html untouched, no r.html


def test_a_file_named_by_out_is_replaced_whole_and_a_refused_run_keeps_it(tmp_path):
    """The one output policy: a file the user names is theirs to replace (atomically); an error leaves it."""
    run = make_run(tmp_path, "run")
    notes = tmp_path / "notes.html"
    notes.write_text("<html>my own notes</html>")
    assert main(["report", "--runs", str(tmp_path / "nope"), "--out", str(notes)]) == 2
    assert notes.read_text() == "<html>my own notes</html>"
    assert main(["report", "--runs", str(run), "--out", str(notes)]) == 0
    assert "my own notes" not in notes.read_text()
    assert Page(notes.read_text()).cells[("steps", 0)] == "no checkpoint (of 100)"
    assert not list(tmp_path.glob(".notes.html.*.tmp"))


# ------------------------------------------------------------------------------------------ in a browser


def run_chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
               "--virtual-time-budget=5000", *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


# Colours no part of the page's own style uses: where one shows in a screenshot, its image was decoded.
FLAT_COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 200, 0), (200, 0, 255), (0, 200, 255)]


def flat_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def test_in_chromium_every_image_decodes_and_nothing_is_blocked(tmp_path):
    """No script on the page says what the browser did: each embedded image is one flat colour of its own, and the
    screenshot must show every colour over about the image's area (drawn at twice its size)."""
    size = (30, 20)
    runs = [make_run(tmp_path / "runs", name, grid_steps=()) for name in ("a", "b")]
    runs.append(make_run(tmp_path / "runs", "c", kind="gan", grid_steps=()))
    colours = iter(FLAT_COLOURS)
    for run in runs:
        flat_png(run / "samples" / "samples_00000010.png", size, next(colours))
        if run.name != "c":
            flat_png(run / "samples" / "reconstructions_00000010.png", size, next(colours))
    edit_grid = flat_png(tmp_path / "edit.png", size, next(colours))
    (runs[0] / "results").mkdir()
    shutil.copy(edit_grid, runs[0] / "results" / "edit.png")
    out = write_report(runs, tmp_path / "report.html")
    assert len(Page(out.read_text()).images) == len(FLAT_COLOURS)
    shot = tmp_path / "shot.png"
    result = run_chromium(tmp_path, out, f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars",
                          "--force-device-scale-factor=1")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert "Content Security Policy" not in result.stderr  # the stylesheet's hash matches
    counts = Counter(Image.open(shot).convert("RGB").getdata())
    area = 2 * size[0] * 2 * size[1]
    for colour in FLAT_COLOURS:
        assert 0.9 * area <= counts[colour] <= 1.1 * area, (colour, counts[colour], area)


def test_in_chromium_the_page_renders(three_runs, tmp_path):
    out = write_report(three_runs, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    result = run_chromium(tmp_path, out, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    assert any(low != high for low, high in image.getextrema()), "the screenshot is one flat colour"
