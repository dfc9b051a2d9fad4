"""Import names that cannot clash: the folders kernels/ and tune/ install as vaegan_kernels and vaegan_tune,
because `kernels` (Hugging Face's, a dependency of recent ML stacks) and `tune` are other projects' names on
PyPI, and whichever was installed last would win."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_kernels_imports_nothing_from_vaegan_dist():
    """kernels/ is usable, testable and benchmarkable alone."""
    for file in sorted((ROOT / "kernels").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "vaegan_dist" for n in names), f"{file} imports {names}"


def test_other_projects_named_kernels_and_tune_do_not_shadow_ours(faces32, tmp_path):
    """Impostor top-level packages `kernels` and `tune` first on the path, as if another project installed
    them: vaegan-dist still imports its own ops and search spaces, and trains."""
    for name in ("kernels", "tune"):
        (tmp_path / "site" / name).mkdir(parents=True)
        (tmp_path / "site" / name / "__init__.py").write_text(f"raise ImportError('{name}: an impostor')\n")
    code = f"""
import torch, vaegan_kernels, vaegan_tune.space
from vaegan_dist.cli.main import main
f = torch.randn(3, 10)
assert torch.allclose(vaegan_kernels.feature_nll(f, torch.zeros(3, 10)), 0.5 * f.square().sum(1).mean())
assert vaegan_tune.space.SPACES_DIR.is_dir() and (vaegan_tune.space.SPACES_DIR / "gamma.yaml").is_file()
args = ["train", "--preset", "smoke", "data.source={faces32}", "train.storage_path={tmp_path}", "train.name=run",
        "data.batch_size=8", "data.loader_workers=0", "train.workers=0", "model.width=0.125", "model.encoder_fc=32",
        "model.discriminator_fc=16", "model.latent_dim=8", "train.grid_size=8", "train.eval_every=0",
        "train.steps=2"]
assert main(args) == 0
"""
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoint_00000002" / "state.pt").is_file()
