"""Each evaluation is also an MLflow run, in an experiment named after the adapter."""

import json

from registry.demo import build
from registry.models import Job
from registry.services.checks import adapter_version_evaluate
from tests.workers.conftest import job_done, wait_for
from tests.workers.test_worker_pool import push_adapter, push_base, register_suite


def test_evaluations_are_logged_to_mlflow(pool, alice, zoo, tmp_path):
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking)
    mlflow.create_experiment("acme/bot", artifact_location=str(tmp_path / "artifacts"))
    pool.start("w1", MLFLOW_TRACKING_URI=tracking)
    base = push_base(alice, zoo.llama)
    version = push_adapter(alice, zoo.adapters["attention"], base)
    suite = register_suite(
        alice, tmp_path, [{"text": line} for line in (build.DEMO_DIR / "corpus.txt").read_text().splitlines()]
    )
    job = adapter_version_evaluate(version=version, suite=suite)
    done = wait_for(lambda: job_done(job.id), 120, "the evaluation", pool)
    assert done.state == Job.State.SUCCEEDED, done.error
    run = mlflow.MlflowClient(tracking_uri=tracking).get_run(done.result["mlflow_run_id"])
    assert run.data.metrics["adapter.loss"] == done.result["metrics"]["adapter"]["loss"]
    assert run.data.params["adapter"] == version.ref and run.data.params["suite"] == suite.ref
    assert json.dumps(done.result)  # the recorded result stays plain JSON
