"""The Celery app. Workers: `celery -A canvas_project worker`."""

import os

from celery import Celery
from celery.signals import worker_init
from django.conf import settings

from canvas_project.redis_client import refuse_cluster_broker
from canvas_project.worker_heartbeat import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")

app = Celery("canvas_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Tasks live in the capability packages that own them (`<package>.tasks`), not at the apps' top level
# where Celery looks by default. Named as strings: the project core imports no app.
app.autodiscover_tasks(["canvas.runs", "deals.documents", "internal_api"])
# Every worker records a heartbeat that GET /api/health reads.
app.steps["worker"].add(WorkerHeartbeat)


@worker_init.connect
def _refuse_cluster_broker(sender=None, **kwargs) -> None:
    if settings.REDIS_CLUSTER:
        refuse_cluster_broker(settings.CELERY_BROKER_URL)
