"""One trip per command (item 18): `vaegan-dist train` validates its config once, builds its run storage
once and reads the data's manifest once, then hands the results down instead of resolving them again."""

import sys
from collections import Counter
from pathlib import Path

import vaegan_dist.config
from vaegan_dist.cli.main import main
from vaegan_dist.train import storage

_opened: list[str] | None = None  # while a test listens: every file the process opens


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _opened is not None and isinstance(args[0], (str, Path)):
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one records only while _opened is a list


def test_train_resolves_config_storage_and_data_once(faces32, tmp_path, monkeypatch):
    global _opened
    calls = Counter()

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    # the public names the command goes through: build_config's validate and the run's storage
    monkeypatch.setattr(vaegan_dist.config, "validate", counting("validate", vaegan_dist.config.validate))
    monkeypatch.setattr(storage.RunStorage, "__init__", counting("storage", storage.RunStorage.__init__))

    args = ["train", "--preset", "smoke", f"data.source={faces32}", f"train.storage_path={tmp_path}",
            "train.name=once", "train.workers=0", "train.steps=2", "data.batch_size=8", "data.loader_workers=0",
            "model.width=0.125", "model.encoder_fc=32", "model.latent_dim=8", "model.discriminator_fc=16",
            "train.grid_size=8"]
    _opened = []
    try:
        assert main(args) == 0
        manifest_reads = [p for p in _opened if Path(p).name == "manifest.json" and str(faces32) in p]
    finally:
        _opened = None
    assert (tmp_path / "once" / "checkpoint_00000002" / "state.pt").is_file()  # it really trained
    assert calls == {"validate": 1, "storage": 1}
    assert len(manifest_reads) == 1, manifest_reads  # the file itself, opened once
