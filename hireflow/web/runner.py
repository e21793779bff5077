"""Serving the app: aiohttp's runner, with its own protocol-level error answers made like every other.

A request aiohttp cannot even parse (a header over 8 KiB, a bad request line, broken chunking) never
reaches the middlewares: aiohttp's `RequestHandler.handle_error` answers it directly, as `text/plain`
quoting the parser's message, which holds up to 100 bytes of the offending line (a bearer token,
say), and logs a traceback with the same bytes. `JsonErrors` answers those with the usual
`{"message", "code"}` JSON and logs one line naming only the error's class. aiohttp builds its
protocol object in `Server.__call__`, so a `Server` subclass is the one place to choose it; `Runner`
makes its server one of those. Production (`web/serve.py`) and the tests (`tests/conftest.py`) both
use it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from hireflow.web.jsonio import error_response

log = logging.getLogger(__name__)

_ANSWERS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "bad_request"),
    431: ("Request headers too large", "headers_too_large"),
    500: ("Internal Server Error", "internal_error"),
    504: ("Request timed out", "timeout"),
}


class JsonErrors(RequestHandler):
    """aiohttp's connection protocol, answering parse errors and handler timeouts with our JSON."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if isinstance(exc, LineTooLong):
            status = 431  # the parser says 400; the limit is 8 KiB per line (request line or header)
        # Never `message` nor str(exc): both quote the bytes that were refused.
        log.warning(
            "refused a request from %s: %s → %d", request.remote, type(exc).__name__ if exc else "error", status
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started, cannot send the error")
        text, code = _ANSWERS.get(status) or (HTTPStatus(status).phrase, "http_" + str(status))
        response = error_response(status, text, code)
        response.force_close()
        return response


class Server(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrors(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """`web.AppRunner` whose server speaks `JsonErrors`."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return Server(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
