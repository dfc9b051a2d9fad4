"""The cluster configs, checked offline: Ray's own validator for the launcher YAMLs, the required fields
of the KubeRay manifests, and Serve's build of our template."""

from pathlib import Path

import pytest
import yaml

from vaegan_dist.ray_compat import RAY_VERSION

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_yaml_passes_rays_validator(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / name).read_text())
    validate_config(prepare_config(config))
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert any(f"ray[default,serve,train,tune]=={RAY_VERSION}" in c for c in config["setup_commands"])
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert starts.count("RAY_AUTH_MODE=token") == 2 and "--dashboard-host=127.0.0.1" in starts
    assert "~/.ray/auth_token" in config["file_mounts"]


def test_the_validator_rejects_a_broken_launcher_yaml():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text())
    config["available_node_types"]["gpu_worker"]["min_wrokers"] = 1
    with pytest.raises(Exception, match="min_wrokers|Additional properties"):
        validate_config(prepare_config(config))


def _cluster_spec(doc):
    return {"RayJob": lambda: doc["spec"]["rayClusterSpec"], "RayService": lambda: doc["spec"]["rayClusterConfig"],
            "RayCluster": lambda: doc["spec"]}[doc["kind"]]()


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml", "rayservice.yaml"])
def test_kuberay_manifests_carry_the_required_fields(name):
    doc = yaml.safe_load((CLUSTER / "kuberay" / name).read_text())
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in ("RayCluster", "RayJob", "RayService")
    spec = _cluster_spec(doc)
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"  # the dashboard is not exposed
    workers = spec["workerGroupSpecs"][0]["template"]["spec"]
    limits = workers["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    for pod in (spec["headGroupSpec"]["template"]["spec"], workers):
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}
        assert claims == {"shared": "vaegan-dist-shared"}
        assert {"name": "shared", "mountPath": "/mnt/shared"} in pod["containers"][0]["volumeMounts"]
    if doc["kind"] == "RayJob":
        entry = doc["spec"]["entrypoint"]
        assert "train.storage_path=/mnt/shared/runs" in entry and "train.shared_storage=true" in entry


def test_the_rayservice_deploys_our_application_with_options_it_accepts():
    """serveConfigV2 passes Ray Serve's own schema, overrides only deployments our template has, and its model
    user_config has exactly the keys the replica reads (a checkpoint that does not exist here: the replica
    loads it)."""
    from ray.serve.schema import ServeDeploySchema

    from vaegan_dist.serve.app import ServeSettings
    from vaegan_dist.serve.model_server import ModelServer

    doc = yaml.safe_load((CLUSTER / "kuberay" / "rayservice.yaml").read_text())
    config = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    (application,) = config.applications
    assert application.import_path == "vaegan_dist.serve.app:template" and application.route_prefix == "/"
    assert application.args == {}
    (model,) = application.deployments
    assert model.name == ModelServer.name
    assert set(model.user_config) == set(ServeSettings(checkpoint="").model_config())
    assert model.user_config["checkpoint"].startswith("/mnt/shared/runs/")
    assert model.ray_actor_options.num_gpus == 1


def test_shared_storage_claim_is_read_write_many():
    doc = yaml.safe_load((CLUSTER / "kuberay" / "shared-storage.yaml").read_text())
    assert doc["kind"] == "PersistentVolumeClaim" and doc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert doc["metadata"]["name"] == "vaegan-dist-shared"


def test_runtime_env_and_scripts():
    env = yaml.safe_load((CLUSTER / "runtime_env.yaml").read_text())
    assert env["env_vars"]["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0" and "runs/" in env["excludes"]
    for script in ("local_cluster.sh", "submit.sh"):
        assert (CLUSTER / script).stat().st_mode & 0o111  # their syntax: tests/integration/test_cluster_scripts.py


def test_serve_build_writes_a_deployable_file_whose_only_blank_is_the_checkpoint(tmp_path):
    """Ray's own `serve build` on our template: its file passes Serve's schema, names our two deployments, and
    the model's user_config carries the checkpoint key that a replica refuses to start without."""
    from click.testing import CliRunner
    from ray.serve.schema import ServeDeploySchema
    from ray.serve.scripts import cli

    from vaegan_dist.serve.model_server import ModelServer

    out = tmp_path / "serve.yaml"
    result = CliRunner().invoke(cli, ["build", "vaegan_dist.serve.app:template", "-o", str(out)])
    assert result.exit_code == 0, result.output
    config = ServeDeploySchema.model_validate(yaml.safe_load(out.read_text()))
    (application,) = config.applications
    deployments = {d.name: d for d in application.deployments}
    assert set(deployments) == {"model", "http"}
    user_config = deployments["model"].user_config
    assert user_config["checkpoint"] == "" and user_config["vector_images"] > 0
    server = ModelServer.func_or_class()
    with pytest.raises(ValueError, match="user_config.checkpoint: not set"):
        server.reconfigure(user_config)


def test_every_file_that_pins_ray_names_ray_compats_version():
    """vaegan_dist/ray_compat.py names the Ray version and the files that pin it: an upgrade changes them together."""
    import re

    import tomllib

    series = ".".join(RAY_VERSION.split(".")[:2])
    project = tomllib.loads((CLUSTER.parent / "pyproject.toml").read_text())["project"]
    (ray,) = [r for r in project["dependencies"] if r.startswith("ray[")]
    major, minor = series.split(".")
    assert ray == f"ray[default,serve,train,tune]>={series},<{major}.{int(minor) + 1}"
    assert re.search(rf"^FROM rayproject/ray:{re.escape(RAY_VERSION)}-", (CLUSTER / "Dockerfile").read_text(), re.M)
    everywhere = [p for p in [*CLUSTER.glob("*.yaml"), *CLUSTER.glob("kuberay/*.yaml"), CLUSTER / "Dockerfile"]
                  if re.search(r"ray(\[[a-z,]+\])?==|rayVersion|rayproject/ray:", p.read_text())]
    assert len(everywhere) == 6  # aws, gcp, the three KubeRay manifests, the Dockerfile
    for path in everywhere:
        pins = re.findall(r"(?:==|rayVersion: \"|rayproject/ray:)(\d+\.\d+\.\d+)", path.read_text())
        assert pins and set(pins) == {RAY_VERSION}, path.name


def test_a_cluster_we_start_is_quieted_and_one_we_join_is_left_as_it_is(monkeypatch):
    """A new local Ray gets token authentication turned on our side (Ray's own default, without its warning);
    joining a cluster (RAY_ADDRESS, an address) leaves the mode to that cluster, and a user's own setting wins.
    Ray's switch is recorded here, not thrown: it would change this process's cached Ray config for later tests."""
    import os

    from ray._private.authentication import authentication_token_setup

    from vaegan_dist.ray_compat import quiet_local_cluster

    switched = []
    monkeypatch.setattr(authentication_token_setup, "_enable_token_auth", lambda: switched.append(True))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    quiet_local_cluster("")
    monkeypatch.delenv("RAY_ADDRESS")
    quiet_local_cluster("127.0.0.1:6379")
    assert switched == [] and "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER" not in os.environ
    quiet_local_cluster("local")  # what ray.init("local") does: start one here
    assert switched == [True] and os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] == "0"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    quiet_local_cluster("local")
    assert switched == [True]


def test_train_controller_settings_reach_the_controller_through_the_drivers_environment(monkeypatch):
    """Train propagates these variables from the driver to its controller (ray_compat item 3): the start timeout
    is ours to set; the poll (0.5 s, against Ray's 2 s, which made every report wait) is a default a user's
    own value overrides."""
    import os

    from ray.train.v2._internal.constants import ENV_VARS_TO_PROPAGATE

    from vaegan_dist.ray_compat import REPORT_POLL_S, configure_train_controller

    assert {"RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"} <= ENV_VARS_TO_PROPAGATE
    for name in ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"):
        monkeypatch.setenv(name, "")  # recorded, so that both are restored after the test, then removed
        monkeypatch.delenv(name)
    configure_train_controller(45)
    assert os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] == "45"
    assert float(os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]) == REPORT_POLL_S == 0.5
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "3")
    configure_train_controller(45)
    assert os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] == "3"
