"""Errors of runs, each with a stable code."""

from canvas_project.errors import ConflictError, NotFoundError


class RunNotFound(NotFoundError):
    code = "run_not_found"
    default_message = "This deal has no such run."


class RunConflict(ConflictError):
    """Another run of the deal is queued or running (one active run per deal)."""

    code = "run_active"


class RunNotWaiting(ConflictError):
    """Only a run waiting for input can be resumed; `run_status` says what it is."""

    code = "run_not_waiting"
