"""gunicorn settings for the web servers (`gunicorn -c python:canvas_project.gunicorn_conf ...`).

With PROMETHEUS_MULTIPROC_DIR set, every worker writes its metrics to files in that directory and GET
/metrics sums them, whichever worker answers the scrape (canvas_project.observability). gunicorn then
has to empty the directory before the first worker starts (values of a previous run would be added to
this one's) and tell prometheus_client when a worker exits, so its live gauges (open SSE subscriptions)
stop counting. Counters and histograms of an exited worker stay in the sum, as Prometheus expects.
"""

from __future__ import annotations

import os


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def on_starting(server) -> None:
    path = _multiproc_dir()
    if path is None:
        return
    if os.path.isdir(path):
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    else:
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker) -> None:
    if _multiproc_dir() is None:
        return
    # lazy: prometheus_client's multiprocess module reads PROMETHEUS_MULTIPROC_DIR when it is imported
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
