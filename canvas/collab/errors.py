"""Errors of live collaboration, each with a stable code."""

from canvas_project.errors import ConflictError, GoneError


class StaleStepsVersion(ConflictError):
    code = "stale_steps_version"


class StepsWindowGone(GoneError):
    """The requested version is older than the kept window (410)."""

    code = "steps_window_gone"


class CollabModeMismatch(ConflictError):
    code = "collab_mode"


class LockTokenMismatch(ConflictError):
    code = "lock_token_mismatch"
