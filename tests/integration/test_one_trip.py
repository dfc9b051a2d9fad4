"""One trip per command (item 18): `vaegan-dist train` validates its config once, builds its run storage
once and reads the data's manifest once, then hands the results down instead of resolving them again."""

import sys
from collections import Counter

from vaegan_dist.cli.main import main
from vaegan_dist.data import sources
from vaegan_dist.train import storage


def test_train_resolves_config_storage_and_data_once(faces32, tmp_path, monkeypatch):
    calls = Counter()

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    validate_module = sys.modules["vaegan_dist.config.validate"]  # the package exports a function of that name
    real_require = validate_module._require

    def require(ok, key, value, why):
        calls["validate"] += key == "train.steps"  # checked once per validation
        return real_require(ok, key, value, why)

    monkeypatch.setattr(validate_module, "_require", require)
    monkeypatch.setattr(sources, "read_manifest", counting("manifest", sources.read_manifest))
    real_init = storage.RunStorage.__init__
    monkeypatch.setattr(storage.RunStorage, "__init__", counting("storage", real_init))

    args = ["train", "--preset", "smoke", f"data.source={faces32}", f"train.storage_path={tmp_path}",
            "train.name=once", "train.workers=0", "train.steps=2", "data.batch_size=8", "data.loader_workers=0",
            "model.width=0.125", "model.encoder_fc=32", "model.latent_dim=8", "model.discriminator_fc=16",
            "train.grid_size=8"]
    assert main(args) == 0
    assert (tmp_path / "once" / "checkpoint_00000002" / "state.pt").is_file()  # it really trained
    assert calls == {"validate": 1, "manifest": 1, "storage": 1}
