"""Errors of the HTTP API: every bad input becomes a 4xx JSON body with a message, never a 500."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: str = Field(description="Machine-readable error code, e.g. insufficient_credits.")
    message: str = Field(description="What went wrong, for a human.")
    details: list[dict[str, Any]] | None = Field(default=None, description="Per-field problems, if any.")


class ApiError(Exception):
    """An error with its HTTP status; raised by handlers and turned into a JSON response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=self.code, message=self.message, details=self.details).model_dump(
            exclude_none=True
        )


def bad_request(message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, details)


def unauthorized(message: str = "missing or invalid bearer token") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def unprocessable(code: str, message: str) -> ApiError:
    return ApiError(422, code, message)


RETRY_AFTER_SECONDS = 1


def unavailable(code: str, message: str, retry_after: int = RETRY_AFTER_SECONDS) -> ApiError:
    """503 with ``Retry-After``: the request may succeed when repeated later."""
    return ApiError(503, code, message, headers={"Retry-After": str(retry_after)})
