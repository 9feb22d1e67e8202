"""Publishing job messages safely from any thread of a web or worker process.

gunicorn runs several threads per process, and each may publish after its
transaction commits. Celery resolves a queue name to one `kombu.Queue` object
per app and hands that shared object to `maybe_declare`, which binds it to the
channel of whichever thread declared it first; other threads then declare
through a channel they do not own, one that may already be released or closed
(`'NoneType' object has no attribute 'client'`). Kombu entities and channels
are not thread-safe; a connection (and its channel) from the producer pool is
used by one thread at a time. So every publish here takes its own producer
from the pool and declares a Queue entity of its own on that producer's
channel, and never touches the app's shared entities. Declarations are cached
per connection by kombu, so this costs one declare per pooled connection.

The filesystem transport of the embedded default writes its exchange table
without a lock when the file does not exist yet (kombu#398), so declarations
are serialised within a process; they are rare once cached.
"""

import logging
import threading

from celery import current_app
from kombu import Exchange, Queue
from kombu.common import maybe_declare

RUN_JOB_TASK = "workers.run_job"
DIRECT_QUEUE_PREFIX = "worker."
_declare_lock = threading.Lock()
logger = logging.getLogger(__name__)


def direct_queue_name(hostname: str) -> str:
    """The queue only the worker `hostname` consumes (affinity routing)."""
    return f"{DIRECT_QUEUE_PREFIX}{hostname}"


def queue_entity(app, name: str) -> Queue:
    """A fresh Queue for one publish, declared exactly as the consuming worker declares it.

    A worker's direct queue is added with Celery's `Queues.select_add`: bound to the default
    exchange, keyed by its name. An exchange named after the queue would not do: node names
    hold '@', which the filesystem transport refuses in exchange names. Shared queues (`gpu`,
    `cpu`) are declared by Celery's rule for missing queues, as the workers started with -Q do.
    """
    queues = app.amqp.queues
    if name.startswith(DIRECT_QUEUE_PREFIX):
        default = queues.default_exchange
        return Queue(name, Exchange(default.name, type=default.type), routing_key=name)
    return queues.new_missing(name)


def publish_job(job_id: str, queue_name: str) -> None:
    """Send one `workers.run_job` message to `queue_name`; raises on broker errors."""
    # By name: the registry does not import the workers package (workers/tasks.py defines it).
    publish_task(RUN_JOB_TASK, [job_id], queue_name)


def publish_task(task_name: str, args: list, queue_name: str, **options) -> None:
    """Send one message for the task `task_name` to `queue_name` (options: e.g. countdown); raises on broker errors."""
    app = current_app
    with app.producer_or_acquire() as producer:
        queue = queue_entity(app, queue_name)
        with _declare_lock:
            maybe_declare(queue, producer.channel)
        # declare=[] because the queue was declared just above on this producer's own channel.
        app.send_task(task_name, args=args, queue=queue, producer=producer, declare=[], **options)


def publish_jobs(messages: list[tuple[str, str]]) -> list[str]:
    """Send one `workers.run_job` message per (job id, queue), in order, on one producer connection
    (a bulk registration's jobs); returns the ids sent. On Redis the messages go in one pipeline
    (kombu's Producer.batch; transports without batches send each at once). A broker error is
    logged, never raised: the jobs of a batch that failed stay queued, and the periodic dispatcher
    sends them (a message that did reach the broker is then sent twice, which claims make harmless)."""
    app, queues = current_app, {}
    try:
        with app.producer_or_acquire() as producer:
            for queue_name in dict.fromkeys(queue for _, queue in messages):
                queues[queue_name] = queue_entity(app, queue_name)
                with _declare_lock:
                    maybe_declare(queues[queue_name], producer.channel)
            with producer.batch():
                for job_id, queue_name in messages:
                    app.send_task(RUN_JOB_TASK, args=[job_id], queue=queues[queue_name], producer=producer, declare=[])
    except Exception:
        logger.exception("could not send %d job messages; the dispatcher will send them", len(messages))
        return []
    return [job_id for job_id, _ in messages]
