"""What our two HTML pages (the report of `vaegan-dist report`, the face editor of `vaegan-dist serve`) share:
one Jinja2 setup, autoescaped, and the hash by which a Content-Security-Policy allows a page's own inline style
and script and nothing else."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

import jinja2


@cache
def environment(package: str) -> jinja2.Environment:
    """The templates in ``package``'s ``templates`` folder. autoescape=True for every template, whatever its name:
    safety must not hang on a file extension."""
    return jinja2.Environment(loader=jinja2.PackageLoader(package, "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def source(package: str, name: str) -> str:
    """A template folder's file as it is (a stylesheet or a script to inline)."""
    env = environment(package)
    return env.loader.get_source(env, name)[0]  # type: ignore[union-attr]


def csp_hash(text: str) -> str:
    """``'sha256-...'`` of inline text, as a Content-Security-Policy source names it."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
