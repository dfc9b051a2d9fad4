"""The face-editing page at ``GET /``: one self-contained file (inline style and script, no external request),
rendered with Jinja2 (autoescaped) and served with a Content-Security-Policy that allows only its own style
and script (by hash), images from the page itself, and requests to this service."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

import jinja2
from markupsafe import Markup


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("vaegan_dist.serve", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _source(name: str) -> str:
    environment = _environment()
    return environment.loader.get_source(environment, name)[0]  # type: ignore[union-attr]


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@cache
def editor_page() -> tuple[str, str]:
    """(the page, its Content-Security-Policy header)."""
    style, script = _source("editor.css"), _source("editor.js")
    csp = (f"default-src 'none'; style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
           "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    html = _environment().get_template("editor.html.j2").render(style=Markup(style), script=Markup(script))
    return html, csp
