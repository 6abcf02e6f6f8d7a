"""The Celery app. Workers: `celery -A canvas_project worker`."""

import os

from celery import Celery

from canvas_project.worker_heartbeat import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")

app = Celery("canvas_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker records a heartbeat that GET /api/health reads.
app.steps["worker"].add(WorkerHeartbeat)
