"""The Celery app: configured from Django settings (CELERY_*); tasks in workers/tasks.py
(and registry/audit/tasks.py: the audit chain's checkpoints).

Queues: `cpu` (light work, the reaper), `gpu` (checks and evaluations on the pool)
and one direct queue per worker (`worker.<nodename>`) for affinity routing.
GPU workers run a solo pool so that every task shares the process's resident models.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("adapter_registry")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "registry.audit"])
app.conf.imports = ["workers.lifecycle"]
