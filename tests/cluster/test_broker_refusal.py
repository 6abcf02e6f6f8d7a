"""Celery cannot use a Redis Cluster as its broker: with REDIS_CLUSTER=true, start-up refuses a missing
CELERY_BROKER_URL or one naming the REDIS_URL node, and a worker refuses a Redis broker that is a node of
any cluster (REDIS_URL may name another node of it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from canvas_project.redis_client import refuse_cluster_broker

PROBE = "import django; django.setup(); from django.conf import settings; print(settings.CELERY_BROKER_URL)"


def _start(**env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "REDIS_CLUSTER")}
    env.update({"DJANGO_SETTINGS_MODULE": "canvas_project.settings", **env_extra})
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)


def test_without_a_broker_url_start_up_is_refused(on_cluster):
    result = _start(REDIS_CLUSTER="true", REDIS_URL=on_cluster.url)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "CELERY_BROKER_URL" in result.stderr


def test_a_broker_url_naming_the_cluster_node_is_refused(on_cluster):
    node = f"redis://127.0.0.1:{on_cluster.ports[0]}/1"
    result = _start(REDIS_CLUSTER="true", REDIS_URL=on_cluster.url, CELERY_BROKER_URL=node)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "cannot use a Redis Cluster" in result.stderr


def test_rabbitmq_beside_the_cluster_starts(on_cluster):
    broker = "amqp://guest:guest@127.0.0.1:5672//"
    result = _start(REDIS_CLUSTER="true", REDIS_URL=on_cluster.url, CELERY_BROKER_URL=broker)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == broker


def test_a_worker_refuses_a_redis_broker_that_is_another_node_of_the_cluster(on_cluster):
    with pytest.raises(ImproperlyConfigured, match="Redis Cluster node"):
        refuse_cluster_broker(f"redis://127.0.0.1:{on_cluster.ports[-1]}/0")
    refuse_cluster_broker(settings.CELERY_BROKER_URL)  # the tests' single-node Redis is a fine broker
    refuse_cluster_broker("amqp://guest:guest@127.0.0.1:5672//")
