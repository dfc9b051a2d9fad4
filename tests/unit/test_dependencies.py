"""Every third-party module our code imports is declared in pyproject.toml: the package's own code in
``dependencies`` (or an optional extra of its own), tests and bench/ in the ``dev`` extra as well. A module
that only arrives with another package (FastAPI with Ray Serve, pyarrow with Ray Data) breaks the day that
package stops bringing it."""

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
# import name -> distribution name, where they differ
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml", "multipart": "python-multipart"}
OURS = {"vaegan_dist", "vaegan_kernels", "vaegan_tune", "tests", "kernels", "tune", "step_throughput"}


def _imported(folders: list[str]) -> dict[str, str]:
    """top-level module -> a file that imports it, for the absolute imports under ``folders``."""
    found: dict[str, str] = {}
    for folder in folders:
        for file in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
                for name in names:
                    found.setdefault(name.split(".")[0], str(file.relative_to(ROOT)))
    return {m: f for m, f in found.items() if m not in sys.stdlib_module_names and m not in OURS}


def _declared(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_every_third_party_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # the package: its dependencies and its optional extras (optuna, imported only when asked for)
    runtime = _declared(project["dependencies"]) | _declared([r for n, e in extras.items() if n != "dev" for r in e])
    dev = runtime | _declared(extras["dev"])
    for modules, declared, where in ((_imported(["vaegan_dist", "kernels", "tune"]), runtime, "dependencies"),
                                     (_imported(["tests", "bench"]), dev, "dependencies or dev")):
        missing = {m: f for m, f in modules.items() if DISTRIBUTION.get(m, m).lower() not in declared}
        assert not missing, f"imported but not declared in pyproject.toml's {where}: {missing}"
    assert {"fastapi", "torch", "ray"} <= set(_imported(["vaegan_dist"]))  # the scan does see imports
