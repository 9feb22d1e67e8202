# Load the Celery app with Django so that tasks sent by name use our configuration.
from workers.celery import app as celery_app

__all__ = ["celery_app"]
