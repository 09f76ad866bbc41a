"""Every error the HTTP server sends is JSON: `{"error": {"code": "...", "message": "..."}}`.

`code` is stable (the convmem exception's `.code`, or one of the HTTP-level codes below); `message` says what was
wrong and what to do. Bad input is always a 4xx, never a 500:

    400 invalid_input, invalid_json     404 not_found            413 request_too_large
    401 unauthorized, invalid_api_key   405 method_not_allowed   422 invalid_request, invalid_format
    502 upstream_error                  503 store_error, no_upstream, config_error
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from convmem.errors import ConfigError, ConvmemError, FormatError, InputError, MissingDependency, NotFound, StoreError

log = logging.getLogger("convmem.server")

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type",
              429: "too_many_requests"}


class ApiError(ConvmemError):
    """An error with its HTTP status, raised by routes and dependencies."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.headers = status, code, headers
        super().__init__(message)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def status_for(exc: ConvmemError) -> int:
    from convmem.providers.llm_openai import UpstreamError

    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, FormatError):
        return 422
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, UpstreamError):
        # the client's own mistake as the upstream saw it (bad model name, too long) stays a 4xx
        return exc.status if 400 <= exc.status < 500 and exc.status not in (401, 403, 407) else 502
    if isinstance(exc, (StoreError, ConfigError, MissingDependency)):
        return 503
    return 500


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ConvmemError)
    async def convmem_error(request: Request, exc: ConvmemError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500 and exc.code != "no_upstream":
            log.warning("%s %s -> %s %s: %s", request.method, request.url.path, status, exc.code, exc)
        return error_response(status, exc.code, str(exc), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "invalid_json", "the request body is not valid JSON")
        parts = []
        for e in errors[:10]:
            where = _location(tuple(e.get("loc", ())))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        details = [{"field": _location(tuple(e.get("loc", ()))), "problem": e.get("msg", "")} for e in errors[:50]]
        return error_response(422, "invalid_request", "; ".join(parts) or "invalid request", details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}; see /openapi.json for the routes"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /openapi.json"
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal_error", "the server failed unexpectedly; see its log")


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413 before the app parses it."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit_message = (f"the request body is over the limit of {self.max_bytes} bytes; send less per request "
                   f"(split an import into several) or start the server with a larger --max-body-mb")
        too_large = error_response(413, "request_too_large", limit_message)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    if int(value) > self.max_bytes:
                        await too_large(scope, receive, send)
                        return
                except ValueError:
                    await error_response(400, "bad_request", "invalid Content-Length header")(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(limit_message)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await too_large(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """Raised while the body is read; FastAPI passes HTTP exceptions through, so the handler answers 413."""

    def __init__(self, message: str):
        super().__init__(413, message)
