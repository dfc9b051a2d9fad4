"""The result files of ``edit``, ``similarity`` and ``pretraining`` as typed records.

The experiment builds its record, ``to_json`` writes it (``--json`` and ``<run>/results/``), and ``vaegan-dist
report`` reads it back with ``from_json``. One definition of each format, so that what is written and what is
read cannot drift apart. ``from_json`` trusts a file no more than a download: every field is checked against
its annotation, and the first one that does not fit is a :class:`ResultFormatError` naming it.

A field with a default may be missing from a file (it was added after the format's first version, or it is
only descriptive); a field without one must be there. A float that JSON carries as NaN or infinity reads back
as None where None is allowed, and is refused where it is not (a table's axis must be a real number).
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from vaegan_dist.evaluate.results import finite_or_none

R = TypeVar("R", bound="ResultRecord")


class ResultFormatError(ValueError):
    """A result file that does not fit its format: one line naming the field at fault."""


class ResultRecord:
    """What every result record shares: its format string, and JSON both ways."""

    FORMAT: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        return finite_or_none({"format": self.FORMAT, **dataclasses.asdict(self)})  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        if not isinstance(data, dict):
            raise ResultFormatError("not a JSON object")
        if data.get("format") != cls.FORMAT:
            raise ResultFormatError(f"format {_shown(data.get('format'))}, expected {cls.FORMAT!r}")
        try:
            return _read_dataclass(cls, data, "")
        except RecursionError:  # a value nested deeper than Python's stack (json.loads allows it)
            raise ResultFormatError("a value is nested too deeply") from None


@dataclass
class EditRow:
    """One attribute at one scale. ``candidates`` and the fractions are None when the evaluator does not know
    the attribute (nothing judges the edit) or no image is a candidate."""

    attribute: str
    scale: float
    candidates: int | None
    changed: int | None
    fraction: float | None
    baseline: float | None = None  # the share the plain reconstruction already changes
    vector_fraction: float | None = None  # the vector's own effect (see editing.score)


@dataclass
class ReconstructionRow:
    """One attribute's read on the plain reconstructions against the originals, both ways. ``EditRow.baseline``
    counts one direction only (gains among the images lacking it, for a positive scale): a model that never
    draws glasses scores 0% there while it takes them off every face that wears them."""

    attribute: str
    having: int  # originals the evaluator reads the attribute on
    lost: int  # of those, reconstructions it does not read it on
    lacking: int  # originals it does not read the attribute on
    gained: int  # of the originals lacking it, reconstructions it reads it on
    changed_fraction: float | None  # (lost + gained) / all images: the share whose read the reconstruction changes

    def problem(self) -> str | None:
        """What makes the counts impossible (read from a file someone else may have written), else None."""
        if min(self.having, self.lost, self.lacking, self.gained) < 0:
            return "a count is negative"
        if self.lost > self.having or self.gained > self.lacking:
            return f"lost {self.lost} of {self.having} or gained {self.gained} of {self.lacking}"
        if self.changed_fraction is not None and not 0.0 <= self.changed_fraction <= 1.0:
            return f"changed_fraction {self.changed_fraction!r} is not in [0, 1]"
        return None


@dataclass
class OfOneModel(ResultRecord):
    """What a result measured on one trained model says of it."""

    checkpoint: str
    step: int
    model_kind: str


@dataclass
class EditRecord(OfOneModel):
    FORMAT: ClassVar[str] = "vaegan-dist-edit/1"
    images: str  # what was edited, in words
    num_images: int
    vector_images: int
    scales: list[float]
    results: list[EditRow]
    reconstruction: list[ReconstructionRow] = field(default_factory=list)  # per attribute the evaluator knows


@dataclass
class SimilarityRow:
    """A model's generations, or the real images (``model_kind`` None): the reference a model can reach."""

    name: str
    cosine: float | None
    mse: float | None
    model_kind: str | None = None
    step: int | None = None
    checkpoint: str | None = None


@dataclass
class SimilarityRecord(ResultRecord):
    FORMAT: ClassVar[str] = "vaegan-dist-similarity/1"
    split: str
    num: int
    attributes: list[str]
    rows: list[SimilarityRow]
    seed: int | None = None


@dataclass
class PretrainingRow:
    init: str  # scratch, frozen, fine-tuned, or the majority-class baseline
    fraction: float
    labels: int
    accuracy: float | None
    valid_accuracy: float | None = None


@dataclass
class PretrainingRecord(OfOneModel):
    FORMAT: ClassVar[str] = "vaegan-dist-pretraining/1"
    metric: str
    test_images: int
    label_fractions: list[float]
    rows: list[PretrainingRow]
    attributes: list[str] = field(default_factory=list)
    train_images: int | None = None
    valid_images: int | None = None
    steps: int | None = None


RECORDS: dict[str, type[ResultRecord]] = {"edit": EditRecord, "similarity": SimilarityRecord,
                                          "pretraining": PretrainingRecord}


# ------------------------------------------------------------------------------ reading by annotation
# Our own small checker rather than a validation library: the formats use five kinds of annotation (str, int,
# float, X | None, list[X]) and dataclasses, and the report must not depend on a library's error wording.


def _read_dataclass(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        name = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ResultFormatError(f"{name}: missing")
            continue
        values[f.name] = _read(hints[f.name], data[f.name], name)
    record = cls(**values)
    problem = record.problem() if hasattr(record, "problem") else None  # a record's own consistency rules
    if problem:
        raise ResultFormatError(f"{where or cls.__name__}: {problem}")
    return record


def _read(hint: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):  # X | None
        if value is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        if inner is float and isinstance(value, float) and not math.isfinite(value):
            return None
        return _read(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ResultFormatError(f"{where}: not a list")
        return [_read(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ResultFormatError(f"{where}: not a JSON object")
        return _read_dataclass(hint, value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ResultFormatError(f"{where}: {_shown(value)} is not a number")
        try:
            number = float(value)  # an int of 400 digits overflows
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise ResultFormatError(f"{where}: {_shown(value)} is not a finite number")
        return number
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ResultFormatError(f"{where}: {_shown(value)} is not a whole number")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ResultFormatError(f"{where}: {_shown(value)} is not a string")
        return value
    raise TypeError(f"{where}: no reader for {hint!r}")  # a record declared with a type this module lacks


def _shown(value: Any) -> str:
    """A short, safe rendering of a value from the file (reprlib: no deep recursion, no megabyte strings)."""
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()  # Python 3.11's Repr takes no arguments
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 2, 40, 40, 40
