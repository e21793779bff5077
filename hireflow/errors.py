"""Domain errors: raised anywhere below `web/`, turned into `{"message": …, "code": …}` JSON in one middleware."""

from __future__ import annotations

from typing import Literal


class HireFlowError(Exception):
    """An error the client should see, with its HTTP status and human message."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. `Retry-After`)."""
        return {}


class BadRequest(HireFlowError):
    status = 400
    code = "bad_request"


AuthFailure = Literal["token_missing", "token_expired", "token_invalid", "user_unknown"]


class Unauthorized(HireFlowError):
    """401 with the one message the frontend knows; `code` says which case it was."""

    status = 401
    code = "token_invalid"

    def __init__(self, code: AuthFailure = "token_invalid") -> None:
        super().__init__("Unauthorized - invalid token", code=code)


class Forbidden(HireFlowError):
    status = 403
    code = "forbidden"


class NotFound(HireFlowError):
    status = 404
    code = "not_found"


class Conflict(HireFlowError):
    status = 409
    code = "conflict"


class Unprocessable(HireFlowError):
    """Well-formed but contradicting an earlier request (an Idempotency-Key reused with another body)."""

    status = 422
    code = "unprocessable"


class PayloadTooLarge(HireFlowError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(HireFlowError):
    status = 415
    code = "unsupported_media_type"

    def __init__(self, message: str = "Content-Type must be application/json") -> None:
        super().__init__(message)


class TooManyRequests(HireFlowError):
    """A quota was exceeded (hireflow/quotas.py); the client may retry after `retry_after_s`."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class ServiceUnavailable(HireFlowError):
    """A dependency (MongoDB, Redis, Clerk, Stream) could not be reached."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str = "Service unavailable") -> None:
        super().__init__(message)
