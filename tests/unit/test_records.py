"""The result records: what an experiment writes reads back as the same record, and a file that does not fit
its format is refused with the field at fault named."""

import json
import math

import pytest

from vaegan_dist.evaluate.editing import edit_table
from vaegan_dist.evaluate.records import (
    EditRecord,
    EditRow,
    PretrainingRecord,
    PretrainingRow,
    ReconstructionRow,
    ResultFormatError,
    SimilarityRecord,
    SimilarityRow,
)
from vaegan_dist.evaluate.results import json_text

EDIT = EditRecord(checkpoint="/r/checkpoint_00000100/state.pt", step=100, model_kind="vaegan", images="test split",
                  num_images=8, vector_images=64, scales=[-1.0, 2.0],
                  results=[EditRow("Eyeglasses", -1.0, 3, 1, 1 / 3, 0.0, 0.5),
                           EditRow("Wings", 2.0, None, None, None)],
                  reconstruction=[ReconstructionRow("Eyeglasses", 2, 1, 6, 0, 1 / 8)])
SIMILARITY = SimilarityRecord(split="test", num=24, attributes=["Male"], seed=0,
                              rows=[SimilarityRow("test set (real images)", 0.9, 0.05),
                                    SimilarityRow("cvae", 0.4, 0.3, "vae", 2000, "/a")])
PRETRAINING = PretrainingRecord(checkpoint="/x", step=5, model_kind="vaegan", metric="mean attribute accuracy",
                                test_images=24, label_fractions=[0.1, 1.0], attributes=["Male"],
                                rows=[PretrainingRow("majority class", 1.0, 100, 0.55, 0.5),
                                      PretrainingRow("scratch", 0.1, 10, 0.6, None)])


@pytest.mark.parametrize("record", [EDIT, SIMILARITY, PRETRAINING], ids=["edit", "similarity", "pretraining"])
def test_a_record_reads_back_from_the_json_it_writes(record):
    data = json.loads(json_text(record.to_json()))  # exactly what lands in the file
    assert data["format"] == type(record).FORMAT
    assert type(record).from_json(data) == record


def test_not_finite_values_are_null_in_the_file_and_none_when_read():
    row = EditRow("Smiling", 1.0, 4, 0, float("nan"), float("inf"), None)
    record = EditRecord("/c", 1, "vae", "x", 4, 4, [1.0], [row])
    text = json_text(record.to_json())
    assert "NaN" not in text and "Infinity" not in text
    assert EditRecord.from_json(json.loads(text)).results[0].fraction is None
    # A file written by someone else with a NaN where None is allowed reads as None too.
    data = json.loads(text)
    data["results"][0]["fraction"] = math.nan
    assert EditRecord.from_json(data).results[0].fraction is None


def test_optional_fields_may_be_missing_required_ones_may_not():
    data = SIMILARITY.to_json()
    del data["seed"], data["rows"][0]["checkpoint"]
    assert SimilarityRecord.from_json(data).seed is None
    del data["num"]
    with pytest.raises(ResultFormatError, match=r"^num: missing$"):
        SimilarityRecord.from_json(data)
    edit = EDIT.to_json()
    del edit["reconstruction"]  # written before the field existed
    assert EditRecord.from_json(edit).reconstruction == []


def deep(levels: int) -> list:
    """A list nested deeper than Python's stack: json.loads reads it, a recursive reader would crash."""
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="vaegan-dist-edit/2"), "format 'vaegan-dist-edit/2', expected 'vaegan-dist-edit/1'"),
    (lambda d: d.update(step=True), "step: True is not a whole number"),  # a bool is not a step
    (lambda d: d.update(step=1.5), "step: 1.5 is not a whole number"),
    (lambda d: d.update(scales="-1,2"), "scales: not a list"),
    (lambda d: d["results"][1].update(attribute=7), "results[1].attribute: 7 is not a string"),
    (lambda d: d["results"][0].update(scale="x" * 100),  # shortened, as reprlib shortens it
     "results[0].scale: 'xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx' is not a number"),
    (lambda d: d.update(scales=[10**400]), "scales[0]: 100000000000000000...0000000000000000000 is not a finite "
                                           "number"),  # an int too large for a float
    (lambda d: d.update(checkpoint=deep(3000)), "checkpoint: [[[...]]] is not a string"),
    (lambda d: d["results"][0].update(scale=math.inf), "results[0].scale: inf is not a finite number"),
    (lambda d: d["results"].__setitem__(0, [1]), "results[0]: not a JSON object"),
])
def test_a_file_that_does_not_fit_names_the_field(change, message):
    data = EDIT.to_json()
    change(data)
    with pytest.raises(ResultFormatError) as caught:
        EditRecord.from_json(data)
    assert str(caught.value) == message


def test_not_an_object():
    with pytest.raises(ResultFormatError, match="not a JSON object"):
        PretrainingRecord.from_json([1, 2])


def test_the_edit_table_shows_the_reconstruction_both_ways():
    lines = edit_table(EDIT).splitlines()
    assert lines[-1] == ("  Eyeglasses          lost on 50% (1/2) that have it, gained on 0% (0/6) that lack it: "
                         "12% of all 8 changed")
    no_rows = EditRecord.from_json({**EDIT.to_json(), "reconstruction": []})  # a file written before the field
    assert "both ways" not in edit_table(no_rows)
