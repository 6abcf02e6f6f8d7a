"""Knobs of the synthesis workflow.

Each is a Django setting, declared once in canvas_project.settings (read from the environment there,
with its default and what it means); this module only names them. Tests override them with
pytest-django's `settings` fixture.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

# By name: the drafters module reads this one for its knobs.
LLM_DRAFTER = "canvas.runs.synthesis.drafters.LlmDrafter"


def get(name: str):
    return getattr(settings, name)


def dead_run_seconds() -> int:
    return int(get("SYNTHESIS_DEAD_RUN_SECONDS"))


def max_run_seconds() -> int:
    return int(get("SYNTHESIS_MAX_RUN_SECONDS"))


def time_budget_seconds() -> int:
    return int(get("SYNTHESIS_TIME_BUDGET_SECONDS"))


def max_concurrency() -> int:
    return max(1, int(get("SYNTHESIS_MAX_CONCURRENCY")))


def heartbeat_seconds() -> float:
    return float(get("SYNTHESIS_HEARTBEAT_SECONDS"))


def cancel_wait_seconds() -> float:
    return float(get("SYNTHESIS_CANCEL_WAIT_SECONDS"))


def cancel_wait_max_seconds() -> float:
    return float(get("SYNTHESIS_CANCEL_WAIT_MAX_SECONDS"))


def max_resumes() -> int:
    return max(0, int(get("RUN_MAX_RESUMES")))


def input_timeout_seconds() -> int:
    return int(get("RUN_INPUT_TIMEOUT_SECONDS"))


def top_k() -> int:
    return max(1, int(get("SYNTHESIS_TOP_K")))


def llm_model() -> str:
    return (get("CANVAS_LLM_MODEL") or "").strip()


def drafter_class():
    """The configured drafter: the LLM drafter when CANVAS_LLM_MODEL is set, else SYNTHESIS_DRAFTER."""
    if llm_model():
        return import_string(LLM_DRAFTER)
    return import_string(get("SYNTHESIS_DRAFTER"))
