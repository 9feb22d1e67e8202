"""Promotions in the process setup users run: gunicorn with threads, a real Celery worker, PostgreSQL."""

import threading
import time

import httpx
from rest_framework.authtoken.models import Token

from registry.models import AdapterAlias, AliasMove, AuditEvent, PromotionRequest
from tests.helpers import directory_files, multipart
from tests.workers.conftest import wait_for


def _push(client: httpx.Client, url: str, fields: dict, directory) -> dict:
    body, content_type = multipart(fields, directory_files(directory))
    response = client.post(url, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text
    return response.json()


def test_two_racing_requests_one_wins_and_a_worker_moves_the_alias_after_approval(pool, alice, dave, zoo):
    pool.start("promoter", queues="gpu,cpu")
    url = pool.start_web()
    engineer = httpx.Client(base_url=url, headers={"Authorization": f"Token {Token.objects.create(user=alice).key}"})
    approver = httpx.Client(base_url=url, headers={"Authorization": f"Token {Token.objects.create(user=dave).key}"})
    _push(engineer, "/api/v1/bases/", {"name": "acme/llama"}, zoo.llama)
    versions = [
        _push(engineer, "/api/v1/adapters/", {"name": "acme/bot", "base": "acme/llama:v1"}, zoo.adapters[key])
        for key in ("attention", "dora")
    ]

    def ready():
        states = [engineer.get(f"/api/v1/adapters/{v['ref']}").json()["status"] for v in versions]
        return all(state == "ready" for state in states)

    wait_for(ready, 120, "both versions to be checked by the worker", pool)

    # Two requests for one alias at the same moment, from two threads of the same gunicorn.
    answers = [None, None]
    start = threading.Barrier(2)

    def ask(index: int) -> None:
        with httpx.Client(base_url=url, headers=engineer.headers) as client:
            start.wait()
            answers[index] = client.post(
                "/api/v1/promotions",
                json={"version": versions[index]["ref"], "alias": "production", "reason": f"race {index}"},
            )

    threads = [threading.Thread(target=ask, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [201, 409]
    lost = next(answer for answer in answers if answer.status_code == 409)
    assert lost.json()["error"]["code"] == "alias_conflict"
    won = next(answer for answer in answers if answer.status_code == 201).json()
    assert PromotionRequest.objects.count() == 1

    approved_at = time.monotonic()
    approved = approver.post(f"/api/v1/promotions/{won['id']}/approve", json={"comment": "ok"})
    assert approved.status_code == 200, approved.text

    def executed():
        body = engineer.get(f"/api/v1/promotions/{won['id']}").json()
        return body if body["state"] in ("executed", "failed") else None

    done = wait_for(executed, 30, "the worker to execute the promotion", pool)
    seconds = time.monotonic() - approved_at
    assert done["state"] == "executed", done
    served = engineer.get("/api/v1/adapters/acme/bot/aliases/production").json()
    assert served["version"] == won["version"]
    assert AliasMove.objects.count() == 1 and AdapterAlias.objects.count() == 1
    execute = AuditEvent.objects.get(type="promotion.execute")
    assert execute.actor_kind == "system"  # the worker acts for the registry, not for a person
    print(f"approval to alias moved: {seconds:.2f} s")
    assert "Traceback" not in pool.logs()
