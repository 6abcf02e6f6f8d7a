"""Knobs of the synthesis workflow.

Each is a Django setting when the settings module defines it, else read from the environment
through canvas_project.env (the one module that reads it), else the default below. Tests override
them with pytest-django's `settings` fixture.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from canvas_project.env import env_int, env_str

# name -> (environment reader, default)
_DEFAULTS = {
    # A running run whose heartbeat is older than this is dead (its worker was killed or hangs).
    "SYNTHESIS_DEAD_RUN_SECONDS": (env_int, 120),
    # Any run still active after this long is dead, heartbeat or not.
    "SYNTHESIS_MAX_RUN_SECONDS": (env_int, 4 * 3600),
    # The drafting budget of one run: sections not finished by then are failed, the run ends.
    "SYNTHESIS_TIME_BUDGET_SECONDS": (env_int, 600),
    # Drafters running at once in one run (LangGraph's max_concurrency over the Send fan-out).
    "SYNTHESIS_MAX_CONCURRENCY": (env_int, 4),
    # The heartbeat is written at most this often (seconds) while a run makes progress.
    "SYNTHESIS_HEARTBEAT_SECONDS": (env_int, 2),
    # How long POST /runs/{id}/cancel waits for the worker to stop before deciding the run itself.
    "SYNTHESIS_CANCEL_WAIT_SECONDS": (env_int, 10),
    # Passages retrieved per section.
    "SYNTHESIS_TOP_K": (env_int, 6),
    # The drafter class (dotted path); the default is offline and deterministic.
    "SYNTHESIS_DRAFTER": (env_str, "canvas.runs.synthesis.drafters.DefaultDrafter"),
    # A langchain init_chat_model spec ("openai:gpt-4o-mini"); when set, the LLM drafter is used.
    "CANVAS_LLM_MODEL": (env_str, ""),
}


def get(name: str):
    if hasattr(settings, name):
        return getattr(settings, name)
    reader, default = _DEFAULTS[name]
    return reader(name, default)


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


def top_k() -> int:
    return max(1, int(get("SYNTHESIS_TOP_K")))


def llm_model() -> str:
    return (get("CANVAS_LLM_MODEL") or "").strip()


def drafter_class():
    """The configured drafter: the LLM drafter when CANVAS_LLM_MODEL is set, else SYNTHESIS_DRAFTER."""
    if llm_model():
        from canvas.runs.synthesis.drafters import LlmDrafter

        return LlmDrafter
    return import_string(get("SYNTHESIS_DRAFTER"))
