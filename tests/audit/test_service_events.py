"""Every state change leaves exactly one audit event of its kind, written by the service that makes it.

The test walks the services the way the registry uses them — pushes through the API, a worker's
claim and results, the reaper, an operator's cancel, signatures and policies, suites, accounts
and tokens, a refused upload and a denied write — and counts the events each step adds.
"""

from collections import Counter

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from registry import roles
from registry.audit.services import audit_chain_verify
from registry.models import AuditEvent, Job, Worker
from registry.services.jobs import job_cancel, job_claim, job_complete_compatibility, workers_reap
from registry.services.signatures import signing_policy_set
from registry.services.suites import evaluation_suite_attach, evaluation_suite_register
from registry.uploads import incoming_from_file
from tests.helpers import directory_files, upload
from tests.signing_helpers import key_policy, make_key, sign_with_key


class Events:
    """Counts the events added since the last look."""

    def __init__(self):
        self.seen = AuditEvent.objects.count()

    def added(self) -> Counter:
        new = AuditEvent.objects.order_by("seq")[self.seen :]
        types = Counter(event.type for event in new)
        self.seen = AuditEvent.objects.count()
        return types


def worker(name: str) -> Worker:
    return Worker.objects.create(
        hostname=name, direct_queue=f"worker.{name}", device_type="cpu", last_heartbeat_at=timezone.now()
    )


def test_each_service_writes_its_events_and_the_chain_verifies(alice, alice_client, bob_client, carol, zoo, tmp_path):
    events = Events()

    # Pushes: the upload, its static check, and the status it moved to.
    assert upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).status_code == 201
    assert events.added() == {"base.upload": 1}
    pushed = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/bot", "base": "acme/llama:v1"},
        directory_files(zoo.adapters["attention"]),
    )
    assert pushed.status_code == 201
    # The compatibility job is routed and its dispatch recorded in the push's own transaction.
    assert events.added() == {"adapter.upload": 1, "check.static": 1, "version.status": 1, "job.dispatch": 1}
    upload_event = AuditEvent.objects.get(type="adapter.upload")
    assert (upload_event.actor_kind, upload_event.actor_name, upload_event.adapter) == ("token", "alice", "acme/bot")
    assert upload_event.object_digest == pushed.json()["digest"] and upload_event.request_id

    # A worker claims the dynamic check and passes it: claim, finish, the check, ready, the counter-signature.
    job = Job.objects.get(kind=Job.Kind.COMPATIBILITY)
    w1 = worker("w1")
    assert events.added() == {}
    claimed = job_claim(job_id=job.id, worker=w1)
    assert events.added() == {"job.claim": 1}
    job_complete_compatibility(job=claimed, worker=w1, verdict="pass", reasons=[], details={}, base_was_resident=False)
    assert events.added() == {"job.finish": 1, "check.dynamic": 1, "version.status": 1, "signature.verify": 1}
    ready = AuditEvent.objects.filter(type="version.status").order_by("-seq").first()
    assert (ready.before["status"], ready.after["status"]) == ("checking", "ready")

    # The reaper: a silent worker is lost and its running job goes back to the queue.
    second = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/bot", "base": "acme/llama:v1"},
        directory_files(zoo.child_adapter),
    )
    assert second.status_code == 201
    events.added()
    w2 = worker("w2")
    job_claim(job_id=Job.objects.get(adapter_version_id=second.json()["id"]).id, worker=w2)
    Worker.objects.filter(id=w2.id).update(last_heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    events.added()
    assert len(workers_reap()) == 1
    assert events.added() == {"worker.lost": 1, "job.release": 1}

    # An operator cancels it: the cancel, the failed dynamic check's consequence on the version.
    assert job_cancel(job=Job.objects.get(adapter_version_id=second.json()["id"]), reason="not needed")
    assert events.added() == {"job.cancel": 1, "version.status": 1}

    # Signing: a policy change, then a signed push verified at upload.
    key = make_key(tmp_path / "keys")
    signing_policy_set(namespace="acme", document=key_policy(key, require=False), user=carol)
    assert events.added() == {"signing_policy.change": 1}
    signed_dir = zoo.copy("adapter-dora", tmp_path / "signed")
    bundle = sign_with_key(signed_dir, key)
    signed = upload(
        alice_client,
        "/api/v1/adapters/",
        {"name": "acme/signed", "base": "acme/llama:v1"},
        directory_files(signed_dir),
        bundle,
    )
    assert signed.status_code == 201
    assert events.added() == {
        "adapter.upload": 1,
        "signature.verify": 1,
        "check.static": 1,
        "version.status": 1,
        "job.dispatch": 1,
    }

    # Suites: registration and attachment.
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "hello"}\n{"text": "world"}\n')
    with incoming_from_file(rows) as incoming:
        suite, _ = evaluation_suite_register(name="acme/corpus", task_type="causal_lm", file=incoming, user=alice)
    assert events.added() == {"suite.register": 1}
    evaluation_suite_attach(suite=suite, adapter_name="acme/bot")
    evaluation_suite_attach(suite=suite, adapter_name="acme/bot")  # already attached: no change, no event
    assert events.added() == {"suite.attach": 1}

    # Accounts, roles and tokens (as the admin site would change them).
    dave = User.objects.create_user(username="dave", password="dave-password")
    assert events.added() == {"user.create": 1}
    dave.groups.add(Group.objects.get_or_create(name=roles.ENGINEER)[0])
    assert events.added() == {"user.roles": 1}
    dave.is_active = False
    dave.save()
    assert events.added() == {"user.update": 1}
    token = Token.objects.create(user=dave)
    key = token.key
    token.delete()
    assert events.added() == {"token.issue": 1, "token.revoke": 1}
    revoke = AuditEvent.objects.get(type="token.revoke")
    assert key not in revoke.body and revoke.object_id.startswith("sha256:")

    # A refused upload and a denied write are recorded too.
    refused = upload(
        alice_client, "/api/v1/adapters/", {"name": "acme/bad", "base": "acme/llama:v1"}, [("x.bin", b"\x80")]
    )
    assert refused.status_code >= 400
    assert events.added() == {"adapter.upload_refused": 1}
    denied = upload(bob_client, "/api/v1/adapters/", {"name": "acme/nope", "base": "acme/llama:v1"}, [])
    assert denied.status_code == 403
    assert events.added() == {"access.denied": 1}
    assert AuditEvent.objects.get(type="access.denied").actor_name == "bob"

    assert audit_chain_verify() == AuditEvent.objects.count()


@pytest.fixture
def carol(db):
    user = User.objects.create_user(username="carol", password="carol-password")
    user.groups.add(Group.objects.get_or_create(name=roles.ADMIN)[0])
    return user


def test_reads_and_unchanged_heartbeats_write_nothing(alice_client, zoo):
    from registry.services.transitions import worker_state_move

    assert upload(alice_client, "/api/v1/bases/", {"name": "acme/llama"}, directory_files(zoo.llama)).status_code == 201
    w = worker("w9")
    events = Events()
    assert alice_client.get("/api/v1/bases/").status_code == 200
    assert alice_client.get("/api/v1/bases/acme/llama:v1").status_code == 200
    assert worker_state_move(w.hostname, Worker.State.ONLINE, last_heartbeat_at=timezone.now())
    assert events.added() == {}
    assert worker_state_move(w.hostname, Worker.State.LOST)
    assert events.added() == {"worker.lost": 1}
