"""Errors of the review capability (comments, approvals, suggestions, brushes), each with a stable code."""

from canvas_project.errors import ConflictError, NotFoundError, RedisUnavailable


class CommentNotFound(NotFoundError):
    code = "comment_not_found"
    default_message = "Comment not found."


class ConditionNotFound(NotFoundError):
    code = "condition_not_found"
    default_message = "Condition not found."


class UnresolvedComments(ConflictError):
    code = "unresolved_comments"


class SuggestionNotFound(NotFoundError):
    code = "suggestion_not_found"
    default_message = "Suggestion not found."


class SuggestionNotPending(ConflictError):
    code = "suggestion_not_pending"


class SuggestionOutdated(ConflictError):
    """The section changed since the suggestion was made and the change no longer applies."""

    code = "suggestion_outdated"


class BrushesUnavailable(RedisUnavailable):
    def __init__(self) -> None:
        super().__init__("Redis is unavailable, so cached brush findings cannot be read; try again shortly.")
