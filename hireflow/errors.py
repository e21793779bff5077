"""Domain errors: raised anywhere below `web/`, turned into `{"message": …}` JSON in one middleware."""

from __future__ import annotations


class HireFlowError(Exception):
    """An error the client should see, with its HTTP status and human message."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(HireFlowError):
    status = 400
    code = "bad_request"


class Unauthorized(HireFlowError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str = "Unauthorized - invalid token") -> None:
        super().__init__(message)


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


class ServiceUnavailable(HireFlowError):
    """A dependency (MongoDB, Redis, Clerk, Stream) could not be reached."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: str = "Service unavailable") -> None:
        super().__init__(message)


class TooManyRequests(HireFlowError):
    """A quota is used up; `retry_after_s` becomes the `Retry-After` header."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)
