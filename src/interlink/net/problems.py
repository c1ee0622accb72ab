"""RFC 9457 problem details: the one shape of every HTTP error the hub (and the provider kit)
returns, and the one exception handler that produces it.

Domain errors carry their HTTP mapping (:class:`~interlink.errors.HttpProblem`: status, problem
type, title, headers); routes raise them and never build error responses themselves. Any other
:class:`~interlink.errors.InterlinkError` that reaches the handler is a bug or an outage, not the
client's fault: it is logged and answered with a generic 500 problem that leaks nothing.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from interlink.errors import PROBLEM_TYPE_PREFIX, HttpProblem, InterlinkError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("interlink.http")


def problem(status: int, kind: str, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {
            "type": PROBLEM_TYPE_PREFIX + kind,
            "title": title,
            "status": status,
            "detail": detail,
        },
        status_code=status,
        media_type=PROBLEM_JSON,
    )


def problem_response(error: InterlinkError) -> JSONResponse:
    """The problem+json response for ``error``."""
    if not isinstance(error, HttpProblem):
        log.error("unexpected error behind an HTTP request", exc_info=error)
        return problem(
            500, "internal-error", "internal error", "the request could not be completed"
        )
    response = JSONResponse(error.problem(), status_code=error.status, media_type=PROBLEM_JSON)
    response.headers.update(error.headers())
    return response


async def interlink_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InterlinkError)
    return problem_response(exc)


def install_problem_handler(app: FastAPI) -> None:
    """Answer every :class:`~interlink.errors.InterlinkError` a route raises as problem+json."""
    app.add_exception_handler(InterlinkError, interlink_error_handler)
