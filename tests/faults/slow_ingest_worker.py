"""A real `celery worker` whose ingestion digitizes slowly, so a test can kill it mid-task.

Run as `python -m tests.faults.slow_ingest_worker`: it lengthens deals.documents.services.digitize by
SLOW_INGEST_SECONDS (default 60) in this process only, then starts the worker like the
`celery -A canvas_project worker` command of tests.servers.WorkerProcess (its WORKER_OPTIONS: solo pool, one
task at a time). Started by WorkerProcess(env, module="tests.faults.slow_ingest_worker").
"""

from __future__ import annotations

import os
import time

import django

from tests.servers import WORKER_OPTIONS


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "canvas_project.settings")
    django.setup()
    from canvas_project.celery import app
    from deals.documents import services as document_services

    real_digitize = document_services.digitize
    delay = float(os.environ.get("SLOW_INGEST_SECONDS", "60"))

    def slow_digitize(*args, **kwargs):
        time.sleep(delay)
        return real_digitize(*args, **kwargs)

    document_services.digitize = slow_digitize
    app.worker_main(["worker", *WORKER_OPTIONS])


if __name__ == "__main__":
    main()
