"""The face-editing page at ``GET /``: one self-contained file (inline style and script, no external request),
rendered with Jinja2 (autoescaped) and served with a Content-Security-Policy that allows only its own style
and script (by hash), images from the page itself, and requests to this service."""

from __future__ import annotations

from functools import cache

from markupsafe import Markup

from vaegan_dist.pages import csp_hash, environment, source

_PACKAGE = "vaegan_dist.serve"


@cache
def editor_page() -> tuple[str, str]:
    """(the page, its Content-Security-Policy header)."""
    style, script = source(_PACKAGE, "editor.css"), source(_PACKAGE, "editor.js")
    csp = (f"default-src 'none'; style-src {csp_hash(style)}; script-src {csp_hash(script)}; "
           "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'")
    html = environment(_PACKAGE).get_template("editor.html.j2").render(style=Markup(style), script=Markup(script))
    return html, csp
