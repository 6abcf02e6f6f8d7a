"""Errors of the superadmin app, each with a stable code."""

from __future__ import annotations

from canvas_project.errors import ConflictError, InvalidInputError


class DealOrgMismatch(InvalidInputError):
    """by_deal named an org that is not the deal's org (read as 422 at body.org_id)."""

    code = "deal_org_mismatch"

    def __init__(self, *, org_id: str, deal_org_id: str) -> None:
        super().__init__(
            f"The deal belongs to another org ({deal_org_id}), not to {org_id}.",
            loc=["body", "org_id"],
            value=org_id,
            code=self.code,
        )


class OrgUnknown(InvalidInputError):
    code = "org_not_found"

    def __init__(self, *, org_id: str) -> None:
        super().__init__("No org has this id.", loc=["body", "org_id"], value=org_id, code=self.code)


class PurgeInputInvalid(InvalidInputError):
    """A purge parameter breaks a rule (the API's serializer says the same before the service runs)."""

    code = "value_error"


class ActiveRunConflict(ConflictError):
    """include_checkpoints while a run of the deal is queued or running, without force."""

    code = "active_run"

    def __init__(self, *, deal_id: str, run_ids: list[str]) -> None:
        super().__init__(
            f"A synthesis run of deal {deal_id} is active ({', '.join(run_ids)}); purging its checkpoints "
            "would abort it. Cancel the run, wait for it to finish, or pass force=true.",
            run_ids=run_ids,
        )
