"""adapterctl push --mlflow-run: the adapter and its provenance come from an MLflow run."""

import json
import os
import subprocess
import sys

from rest_framework.authtoken.models import Token

from tests.helpers import directory_files, upload


def test_it_imports_an_adapter_and_its_provenance_from_an_mlflow_run(live_server, alice, alice_client, zoo, tmp_path):
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    experiment = mlflow.create_experiment("training", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params({"lr": 0.0005, "epochs": 3})
        mlflow.set_tag("mlflow.source.git.commit", "9f1c2e3d4b5a")
        mlflow.log_artifacts(str(zoo.adapters["attention"]), artifact_path="adapter")
    mlflow.set_tracking_uri("")

    base = upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).json()
    env = {
        **os.environ,
        "ADAPTER_REGISTRY_URL": live_server.url,
        "ADAPTER_REGISTRY_TOKEN": Token.objects.get_or_create(user=alice)[0].key,
        "MLFLOW_TRACKING_URI": tracking,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry.cli",
            "--json",
            "push",
            "--mlflow-run",
            f"runs:/{run.info.run_id}/adapter",
            "--name",
            "acme/from-mlflow",
            "--base",
            base["ref"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["provenance"]["mlflow_run_id"] == run.info.run_id
    assert body["provenance"]["mlflow_run_uri"] == f"runs:/{run.info.run_id}/adapter"
    assert body["provenance"]["code_commit"] == "9f1c2e3d4b5a"
    assert body["provenance"]["params"] == {"lr": "0.0005", "epochs": "3"}
    original = {p: s for p, s in ((f.name, None) for f in zoo.adapters["attention"].iterdir())}
    assert {f["path"] for f in body["files"]} == set(original)

    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "registry.cli",
            "push",
            "--mlflow-run",
            "runs:/0000/adapter",
            "--name",
            "acme/x",
            "--base",
            base["ref"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("adapterctl: cannot read MLflow run")
