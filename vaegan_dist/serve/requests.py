"""What a request may ask, for every layer of the service: the error that answers a 4xx naming the field at
fault (raised by the HTTP ingress and the model; the model deployment returns it as a :class:`Refusal`), and the
parsing of the fields that carry more than one value."""

from __future__ import annotations

import json
from dataclasses import dataclass

from vaegan_dist.evaluate.editing import MAX_SCALE  # as `vaegan-dist edit --scale`


class RequestError(ValueError):
    """What a request asked for cannot be done with this model: a 4xx naming the field at fault."""


def one_line(text: str) -> str:
    """``text`` with its line breaks and other control characters as spaces: a message that quotes a client's field
    (a JSON key with a newline in it) stays one line in the response and in the log."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)


@dataclass(frozen=True)
class Refusal:
    """A RequestError as the model deployment returns it: a client's mistake is not the service's error, and a
    raised one would reach Serve's log at ERROR level with a 23-line traceback."""

    message: str


def parse_attr(items: list[str]) -> dict[str, int]:
    """``attr=Eyeglasses:1`` query items -> {name: 0 or 1}."""
    if len(items) > 64:
        raise RequestError(f"attr: {len(items)} settings; at most 64")
    settings: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or value.strip() not in ("0", "1") or not name:
            raise RequestError(f"attr: {item[:60]!r} is not NAME:0 or NAME:1")
        if name in settings:
            raise RequestError(f"attr: {name[:60]!r} given twice")
        settings[name] = int(value)
    return settings


def parse_scales(text: str) -> dict[str, float]:
    """The ``scales`` form field: a JSON object of attribute -> number."""
    try:
        scales = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise RequestError("scales: not JSON (expected an object such as {\"Eyeglasses\": 1.5})") from None
    if not isinstance(scales, dict) or not scales:
        raise RequestError("scales: expected a non-empty JSON object of attribute -> number")
    for name, value in scales.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= MAX_SCALE:
            raise RequestError(f"scales.{name[:60]}: {str(value)[:40]!r} is not a finite number within "
                               f"+-{MAX_SCALE:g}")  # abs() first: an int of 400 digits is not a float
    return scales
