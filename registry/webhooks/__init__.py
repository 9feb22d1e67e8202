"""Webhooks: tell receivers (serving, CI) about moves as they happen, signed and retried.

- services.py: `webhook_emit` (called inside the transaction of the change it announces) and the
  admin's operations on webhooks (create, update, delete, test), each an audit event
- delivery.py: claiming, signing, sending and recording one try; the redelivery sweep
- tasks.py: the Celery tasks (cpu queue) that call delivery.py
- api.py: /api/v1/webhooks (admin role)
"""
