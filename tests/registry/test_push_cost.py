"""What one adapter push costs in SQL: a fixed number of statements, whatever the adapter's size,
the base's size or the number of versions already registered (issue 13: push p50 <= 25 ms).

The count is of the whole request, token lookup to the job's message after commit: 57 before the
base's tensor index and the trimmed ingest, 41 after it, 20 since the chain head is locked once per
push, the job is routed and recorded in the push's own transaction, a new name is inserted rather
than looked up first, and the response is not read back (`benchmarks/push_latency.py --profile`
lists them); 19 since groups and namespace grants are read in one query; 16 since the push's four
audit events are written by one statement; 15 since a version is inserted in the status its static
check gives (computed before the transaction, as a bulk registration does), not updated to it.
Change it only with a reason."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.helpers import directory_files, upload

PUSH_STATEMENTS = 15
# A new version of a name that exists: the insert finds the name, which is then locked, and the
# version number and the suites attached to the name are looked up.
EXISTING_NAME_EXTRA = 3


def push(client, name, base_ref, directory, capture_on_commit):
    with CaptureQueriesContext(connection) as queries, capture_on_commit(execute=True) as callbacks:
        response = upload(client, "/api/v1/adapters/", {"name": name, "base": base_ref}, directory_files(directory))
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1  # the compatibility job's dispatch ran, and is counted
    return len(queries)


def test_a_push_takes_the_same_few_statements_whatever_its_size(alice_client, zoo, django_capture_on_commit_callbacks):
    small = upload(alice_client, "/api/v1/bases/", {"name": "acme/small"}, directory_files(zoo.llama)).json()
    sharded = upload(alice_client, "/api/v1/bases/", {"name": "acme/sharded"}, directory_files(zoo.llama_sharded))

    def count(name, base, adapter):
        return push(alice_client, name, base["ref"], zoo.adapters[adapter], django_capture_on_commit_callbacks)

    first = count("acme/one", small, "attention")
    # More tensors (14 LoRA pairs against 4), and a base in several shards.
    bigger = count("acme/two", sharded.json(), "all_linear")
    # A second version of a name that exists: its row is only locked, not created.
    second_version = count("acme/one", small, "dora")
    assert first == PUSH_STATEMENTS, (first, bigger, second_version)
    assert bigger == first
    assert second_version <= first + EXISTING_NAME_EXTRA
