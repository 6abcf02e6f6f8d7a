"""Errors of the canvas app, each with a stable code."""

from canvas_project.errors import (
    ConflictError,
    LockedError,
    NotFoundError,
    PayloadTooLargeError,
    StaleError,
)


class StaleVersion(StaleError):
    code = "stale_version"

    def __init__(
        self,
        *,
        current_version: int,
        base_version: int,
        section_key: str | None = None,
        section_version: int | None = None,
    ) -> None:
        if section_key is None:
            what = f"The memo changed since version {base_version}; it is now at version {current_version}."
        elif section_version is not None and section_version > base_version:
            what = (
                f"Section {section_key!r} changed since version {base_version} (at version {section_version}); "
                f"the memo is now at version {current_version}."
            )
        else:
            what = f"The memo has no version {base_version} yet; it is at version {current_version}."
        super().__init__(f"{what} Reload, reapply your change and save again.", current_version=current_version)


class MemoApproved(ConflictError):
    code = "memo_approved"
    default_message = "The memo is approved and read-only; an owner must reopen it before it can change."


class ContentTooLarge(PayloadTooLargeError):
    code = "content_too_large"


class SectionNotFound(NotFoundError):
    code = "section_not_found"
    default_message = "This memo has no such section."


class VersionNotFound(NotFoundError):
    code = "version_not_found"
    default_message = "This memo has no such version (it may have been pruned by retention)."


class SectionLocked(LockedError):
    code = "section_locked"


class TransitionRefused(ConflictError):
    code = "transition_refused"


class ExportRefused(ConflictError):
    code = "export_refused"
