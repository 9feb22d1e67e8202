"""Worker lifecycle: a direct queue per worker, registration, heartbeats, shutdown.

Each worker consumes `worker.<nodename>` besides the queues it was started with,
so jobs for a base it holds can be sent to it alone. A heartbeat thread reports
device memory and the resident cache; the reaper marks silent workers lost.
"""

import logging
import threading

from celery.signals import celeryd_after_setup, worker_ready, worker_shutdown
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from registry.audit.context import acting_as, actor_worker
from registry.broker import direct_queue_name
from registry.models import Worker
from registry.services.transitions import worker_registered, worker_state_move, worker_stopped
from workers.execute import cache_snapshot
from workers.runtime.device import probe

logger = logging.getLogger(__name__)
_state = {"hostname": None, "stop": threading.Event()}


@celeryd_after_setup.connect
def add_direct_queue(sender, instance, **kwargs):
    _state["hostname"] = sender
    instance.app.amqp.queues.select_add(direct_queue_name(sender))


def _report() -> dict:
    info = probe()
    return {
        "device_type": info["device_type"],
        "device_name": info["device_name"],
        "device_memory_total": info["device_memory_total"],
        "device_memory_free": info["device_memory_free"],
        "host_memory_total": info["host_memory_total"],
        "host_memory_available": info["host_memory_available"],
        "library_versions": info["library_versions"],
        "resident": cache_snapshot().to_dict(),  # Worker.resident: read back with ResidentSnapshot.from_dict
        "last_heartbeat_at": timezone.now(),
        "state": Worker.State.ONLINE,
    }


@worker_ready.connect
def register(sender, **kwargs):
    hostname = sender.hostname
    queues = sorted(sender.app.amqp.queues.consume_from.keys())
    with acting_as(actor_worker(hostname)):
        worker_registered(hostname, queues=queues, direct_queue=direct_queue_name(hostname), **_report())
    logger.info("registered worker %s on %s", hostname, queues)
    threading.Thread(target=_heartbeat_loop, args=(hostname,), name="registry-heartbeat", daemon=True).start()


def _heartbeat_loop(hostname: str) -> None:
    while not _state["stop"].wait(settings.WORKER_HEARTBEAT_SECONDS):
        try:
            close_old_connections()
            report = _report()
            with acting_as(actor_worker(hostname)):
                worker_state_move(hostname, report.pop("state"), **report)
        except Exception:  # a missed beat is retried at the next tick; the reaper tolerates a few
            logger.exception("heartbeat failed")


@worker_shutdown.connect
def unregister(sender, **kwargs):
    _state["stop"].set()
    if _state["hostname"]:
        close_old_connections()
        with acting_as(actor_worker(_state["hostname"])):
            worker_stopped(_state["hostname"])


def current_worker() -> Worker:
    return Worker.objects.get(hostname=_state["hostname"])
