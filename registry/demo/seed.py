"""Demo data for the embedded default: users with roles, two real bases, trained adapters,
suites and evaluations, and a promotion history (registry/demo/promotions.py).

Idempotent: roles and users are get-or-create; models are built once under
var/demo-build and ingested through the same service as the API, which returns
the existing version when the content is already registered; the promotion history
is recorded once, when the versions it promotes are ready.
"""

import hashlib
import json
import logging
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User

from registry import roles
from registry.demo import build
from registry.demo.promotions import DemoVersions, demo_promotions_start
from registry.models import Job
from registry.services.checks import adapter_version_evaluate
from registry.services.ingest import adapter_version_ingest, base_model_version_ingest
from registry.services.suites import evaluation_suite_attach, evaluation_suite_register
from registry.uploads import incoming_from_directory, incoming_from_file

logger = logging.getLogger(__name__)

DEMO_USERS = {
    "admin": roles.ADMIN,
    "engineer": roles.ENGINEER,
    "approver": roles.APPROVER,
    "auditor": roles.AUDITOR,
}


def ensure_roles() -> None:
    for role in roles.ROLES:
        Group.objects.get_or_create(name=role)


def ensure_demo_users() -> None:
    """Demo logins (password = name); only ever called for the embedded default."""
    for username, role in DEMO_USERS.items():
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.set_password(username)
            user.is_staff = user.is_superuser = role == roles.ADMIN
            user.save()
        user.groups.add(Group.objects.get(name=role))


def _built(directory: Path, marker: str, make) -> Path:
    if not (directory / marker).exists():
        logger.info("building %s", directory.name)
        make(directory)
    return directory


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=settings.BASE_DIR,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _provenance(dataset: Path, **params) -> dict:
    return {
        "dataset_name": f"bundled/{dataset.name}",
        "dataset_digest": "sha256:" + hashlib.sha256(dataset.read_bytes()).hexdigest(),
        "code_commit": _git_commit(),
        "params": params,
    }


def _ingest_base(directory: Path, name: str, user):
    with incoming_from_directory(directory) as files:
        return base_model_version_ingest(name=name, files=files, user=user).version


def _ingest_adapter(directory: Path, name: str, base, user, parent=None, provenance=None, signature=None):
    with incoming_from_directory(directory) as files:
        return adapter_version_ingest(
            name=name,
            files=files,
            base_ref=str(base.id),
            parent_ref=str(parent.id) if parent else None,
            provenance=provenance,
            signature=signature,
            user=user,
        ).version


def _demo_signature(root: Path, model: Path) -> bytes:
    """A signature by the demo's "CI" key, which the demo namespace's policy trusts.

    Made once and kept beside the model (not in it: it is no file of the version), so
    a restart re-sends the same bundle and adds no second signature.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from registry.services.signatures import signing_policy_current, signing_policy_set
    from registry.signing.sign import sign_directory

    key_path, bundle_path = root / "demo-ci-key.pem", root / f"{model.name}.sig"
    if not key_path.exists():
        private = ec.generate_private_key(ec.SECP256R1())
        key_path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        bundle_path.unlink(missing_ok=True)
    if not bundle_path.exists():
        sign_directory(model, key=key_path, output=bundle_path)
    if signing_policy_current("demo").row is None:
        public = serialization.load_pem_private_key(key_path.read_bytes(), password=None).public_key()
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signing_policy_set(
            namespace="demo",
            document={"trusted_keys": [{"id": "demo-ci", "public_key_pem": pem.decode(), "revoked_at": None}]},
            user=User.objects.get(username="admin"),
            reason="demo: trust the demo CI key; signatures optional",
        )
    return bundle_path.read_bytes()


def build_demo_models(root: Path) -> dict[str, Path]:
    minilm = _built(root / "minilm", "model.safetensors", build.export_minilm_base)
    llama = _built(
        root / "tiny-llama",
        "model.safetensors",
        lambda d: build.build_llama_base(
            d, hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, vocab_size=30522, tokenizer_from=minilm
        ),
    )
    lora = {"lora_alpha": 16, "lora_dropout": 0.0}
    adapters = {
        "minilm-sentiment": lambda d: build.build_lora_adapter(
            minilm,
            d,
            task="sequence-classification",
            train_steps=8,
            r=8,
            target_modules=["query", "value"],
            modules_to_save=["classifier"],
            **lora,
        ),
        "support-v1": lambda d: build.build_lora_adapter(
            llama, d, train_steps=4, r=8, target_modules=["q_proj", "v_proj"], **lora
        ),
        "support-v2": lambda d: build.build_lora_adapter(
            llama, d, train_steps=12, r=8, target_modules=["q_proj", "v_proj"], **lora
        ),
        "support-dora": lambda d: build.build_lora_adapter(
            llama, d, train_steps=6, seed=3, r=8, target_modules=["q_proj", "v_proj"], use_dora=True, **lora
        ),
        "summarize-all-linear": lambda d: build.build_lora_adapter(
            llama, d, train_steps=6, seed=5, r=16, target_modules="all-linear", use_rslora=True, **lora
        ),
    }
    built = {"minilm": minilm, "tiny-llama": llama}
    for key, make in adapters.items():
        built[key] = _built(root / key, "adapter_model.safetensors", make)
    return built


def seed_demo(root: Path) -> list[str]:
    """Register the demo models; returns the references of what is registered."""
    engineer = User.objects.get(username="engineer")
    models = build_demo_models(root)
    corpus, sentiment = build.DEMO_DIR / "corpus.txt", build.DEMO_DIR / "sentiment.jsonl"
    minilm = _ingest_base(models["minilm"], "demo/all-minilm-l6-v2", engineer)
    llama = _ingest_base(models["tiny-llama"], "demo/tiny-llama", engineer)
    sentiment_adapter = _ingest_adapter(
        models["minilm-sentiment"],
        "demo/minilm-sentiment",
        minilm,
        engineer,
        provenance=_provenance(sentiment, steps=8, lr=5e-3),
    )
    v1 = _ingest_adapter(
        models["support-v1"], "demo/support-bot", llama, engineer, provenance=_provenance(corpus, steps=4, lr=5e-3)
    )
    v2 = _ingest_adapter(
        models["support-v2"],
        "demo/support-bot",
        llama,
        engineer,
        provenance=_provenance(corpus, steps=12, lr=5e-3),
        signature=_demo_signature(root, models["support-v2"]),
    )
    dora = _ingest_adapter(
        models["support-dora"],
        "demo/support-bot-dora",
        llama,
        engineer,
        parent=v1,
        provenance=_provenance(corpus, steps=6, use_dora=True),
    )
    summarize = _ingest_adapter(
        models["summarize-all-linear"],
        "demo/summarize",
        llama,
        engineer,
        parent=v2,
        provenance=_provenance(corpus, steps=6, use_rslora=True),
    )
    _seed_evaluations(
        engineer,
        {
            "demo/support-corpus": (corpus_rows(corpus), "causal_lm", [v1, v2, dora, summarize]),
            "demo/sentiment": (sentiment.read_text(), "classification", [sentiment_adapter]),
        },
    )
    demo_promotions_start(DemoVersions(support_v1=v1, support_v2=v2, sentiment=sentiment_adapter))
    return [v.ref for v in (minilm, llama, sentiment_adapter, v1, v2, dora, summarize)]


def corpus_rows(corpus: Path) -> str:
    return "".join(json.dumps({"text": line}) + "\n" for line in corpus.read_text().splitlines() if line.strip())


def _seed_evaluations(user, suites: dict) -> None:
    """Register the demo suites, attach them, and evaluate each demo version once."""
    for name, (content, task_type, versions) in suites.items():
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "suite.jsonl"
            path.write_text(content)
            with incoming_from_file(path) as file:
                suite, _ = evaluation_suite_register(name=name, task_type=task_type, file=file, user=user)
        for version in versions:
            evaluation_suite_attach(suite=suite, adapter_name=version.adapter.full_name)
            if not Job.objects.filter(adapter_version=version, suite=suite).exists():
                adapter_version_evaluate(version=version, suite=suite)
