"""canvas_project.heap: a web process freezes what it loaded out of the garbage collector's reach.

Checked in fresh interpreters (the ASGI and WSGI entry points, as a server imports them), since freezing is
process-wide. Why it matters: docs/performance.md, "Garbage collection was the latency tail"."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.servers import service_env

PROBE = (
    "import gc, json, importlib; importlib.import_module({module!r}); "
    "print(json.dumps({{'frozen': gc.get_freeze_count(), 'threshold': gc.get_threshold()[0], "
    "'urlconf_loaded': 'canvas.urls' in __import__('sys').modules}}))"
)


def _loaded(module: str, **env: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        env={**os.environ, **service_env(**env)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["canvas_project.asgi", "canvas_project.wsgi"])
def test_a_loaded_web_process_has_frozen_its_start_up_objects_and_collects_less_often(db, module):
    state = _loaded(module)
    # everything loaded (Django, DRF, the views the URLconf imports) is frozen: well over 100,000 objects
    assert state["frozen"] > 100_000
    assert state["threshold"] == 50_000
    assert state["urlconf_loaded"] is True  # imported at start-up, so frozen too, not at the first request


def test_it_can_be_turned_off_and_the_threshold_set(db):
    assert _loaded("canvas_project.asgi", GC_FREEZE_AFTER_LOAD="false")["frozen"] == 0
    state = _loaded("canvas_project.asgi", GC_GEN0_THRESHOLD="12345")
    assert state["threshold"] == 12345 and state["frozen"] > 100_000
