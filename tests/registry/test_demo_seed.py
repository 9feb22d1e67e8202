"""The demo seed registers real, trained models with lineage, and is idempotent."""

import numpy as np
from django.contrib.auth.models import User
from safetensors.numpy import load_file

from registry import roles
from registry.demo.seed import DEMO_USERS, ensure_demo_users, ensure_roles, seed_demo
from registry.models import AdapterVersion, BaseModelVersion, Blob, Job, Signature, SigningPolicy


def test_it_seeds_trained_adapters_with_lineage_once(db, tmp_path):
    ensure_roles()
    ensure_demo_users()
    refs = seed_demo(tmp_path)
    counts = (
        BaseModelVersion.objects.count(),
        AdapterVersion.objects.count(),
        Blob.objects.count(),
        Job.objects.count(),
        Signature.objects.count(),
        SigningPolicy.objects.count(),
    )

    ensure_demo_users()
    assert seed_demo(tmp_path) == refs
    assert (
        BaseModelVersion.objects.count(),
        AdapterVersion.objects.count(),
        Blob.objects.count(),
        Job.objects.count(),
        Signature.objects.count(),
        SigningPolicy.objects.count(),
    ) == counts
    # One version arrives signed by the demo CI key, which the demo namespace's policy trusts.
    signed = Signature.objects.get()
    assert (signed.version.ref, signed.key_id, signed.trusted, signed.policy_version) == (
        "demo/support-bot:v2",
        "demo-ci",
        True,
        1,
    )
    # Every demo adapter passes the static check and is queued for the dynamic one and an evaluation.
    assert set(AdapterVersion.objects.values_list("status", flat=True)) == {"checking"}
    assert Job.objects.filter(kind="evaluation").count() == AdapterVersion.objects.count()

    minilm = BaseModelVersion.objects.get(base_model__name="all-minilm-l6-v2")
    assert minilm.architecture == "BertModel" and 22_000_000 < minilm.parameter_count < 23_000_000
    dora = AdapterVersion.objects.get(adapter__name="support-bot-dora")
    assert dora.use_dora and dora.parent.ref == "demo/support-bot:v1"
    assert AdapterVersion.objects.get(adapter__name="minilm-sentiment").modules_to_save == ["classifier"]
    assert AdapterVersion.objects.filter(adapter__name="support-bot").count() == 2

    # Trained, not just initialised: peft starts lora_B at zero.
    weights = load_file(str(tmp_path / "support-v1" / "adapter_model.safetensors"))
    assert any(np.abs(t).max() > 0 for name, t in weights.items() if "lora_B" in name)

    for username, role in DEMO_USERS.items():
        user = User.objects.get(username=username)
        assert user.check_password(username) and role in roles.roles_of(user)
