"""Errors of the internal contract, answered in its own envelope {success: false, error: {code, message}}."""

from __future__ import annotations


class ContractError(Exception):
    status = 400

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ContractUnauthorized(ContractError):
    status = 401


class ContractBadRequest(ContractError):
    status = 400


class ContractForbidden(ContractError):
    status = 403


def envelope(code: str, message: str) -> dict:
    return {"success": False, "error": {"code": code, "message": message}}
