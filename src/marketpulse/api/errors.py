"""Every error the API returns has the same body: ``{"detail": ..., "status_code": ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

# SQLSTATEs of constraint violations a request can cause: the last line of defence when two
# requests race past a route's own duplicate check (the route's own 409 names the row).
_CONSTRAINT_STATUS = {"23505": 409, "23503": 409, "23514": 422, "23502": 422}


def error_body(status_code: int, detail: Any) -> dict[str, Any]:
    return {"detail": detail, "status_code": status_code}


def install_error_handlers(app: FastAPI) -> None:
    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return JSONResponse(
            error_body(exc.status_code, exc.detail), exc.status_code, headers=exc.headers
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse(error_body(422, errors), 422)

    async def constraint_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, IntegrityError)
        sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        status = _CONSTRAINT_STATUS.get(str(sqlstate), 409)
        constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
        detail = "the change conflicts with existing data"
        if constraint:
            detail += f" (constraint {constraint})"
        return JSONResponse(error_body(status, detail), status)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(IntegrityError, constraint_error)
    app.add_exception_handler(RequestValidationError, validation_error)


ERROR_BODY_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["detail", "status_code"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {}},
                {"type": "object"},
            ],
            "description": "what is wrong: a message, or a list of problems (validation "
            "errors are objects with loc, msg and type)",
            "examples": ["symbol 'FOO.XX': unknown exchange 'XX'"],
        },
        "status_code": {"type": "integer", "examples": [422]},
    },
}


def document_error_body(app: FastAPI) -> None:
    """Make the OpenAPI schema tell the truth about errors: FastAPI documents its own 422 body
    (``HTTPValidationError``) on every operation, but every error here, validation included,
    has the body above."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {})["HTTPValidationError"] = (
                ERROR_BODY_SCHEMA
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
