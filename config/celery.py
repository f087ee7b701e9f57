import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

# Every queue the tasks are routed to (CELERY_TASK_ROUTES): a worker started with
# ``-Q`` and all of them does every kind of work.
QUEUES = ("default", "imports", "segments", "campaigns")

app = Celery("kartoteka")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
