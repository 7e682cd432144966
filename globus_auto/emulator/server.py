"""HTTP plumbing: routing, request parsing and Globus-style error documents.

The emulator serves the Transfer API, the Auth API and its own test controls
from one base URL. Every answer is JSON (or a tiny HTML page for the login
screens); every failure is a document shaped like the one Globus sends, never
a traceback and never a connection left hanging.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
_REQUEST_ID_ALPHABET = string.ascii_letters + string.digits

JSONDict = dict[str, Any]


def new_request_id() -> str:
    """Return a request id in the style Transfer uses (nine letters and digits)."""
    return "".join(secrets.choice(_REQUEST_ID_ALPHABET) for _ in range(9))


class GlobusError(Exception):
    """An error answered as a Transfer-style document: code, message, resource.

    ``extra`` holds further keys of the document (``required_scopes`` ...).
    """

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class OAuthError(Exception):
    """An error of the OAuth2 token endpoint: ``{"error": ..., ...}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class AuthAPIError(Exception):
    """An error of the Auth REST API (``errors`` list, as in the SDK fixtures)."""

    def __init__(self, status: int, code: str, detail: str, title: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title


@dataclass
class Request:
    """One parsed HTTP request as the handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    request_id: str = field(default_factory=new_request_id)
    template: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Return the last value of query parameter ``name``."""
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> JSONDict:
        """Return the body as a JSON object or raise a Globus-style 400."""
        try:
            data = json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise GlobusError(
                400, "ClientError.BadRequest", f"Malformed JSON body: {exc}"
            ) from None
        if not isinstance(data, dict):
            raise GlobusError(
                400, "ClientError.BadRequest", "The request body must be a JSON object"
            )
        return data

    def form(self) -> dict[str, str]:
        """Return the body as an urlencoded form (last value of each key)."""
        try:
            text = self.body.decode("utf-8")
            pairs = urllib.parse.parse_qsl(
                text, keep_blank_values=True, strict_parsing=False
            )
        except (UnicodeDecodeError, ValueError):
            raise OAuthError(400, "invalid_request", "Malformed form body") from None
        return dict(pairs)


@dataclass
class Response:
    """What a handler returns: status, body and extra headers."""

    status: int
    body: JSONDict | list[Any] | str | bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, indent=None).encode("utf-8")


Handler = Callable[..., Response]


@dataclass
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    api: str  # "transfer", "auth" or "control"


def compile_route(method: str, template: str, handler: Handler, api: str) -> Route:
    """Turn ``/v0.10/task/{task_id}`` into a regex with named groups."""
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return Route(method, template, re.compile(f"^{regex}$"), handler, api)


class Router:
    """Find the route for a method and path; remember routes as templates."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, api: str) -> None:
        self.routes.append(compile_route(method, template, handler, api))

    def extend(self, routes: Iterable[tuple[str, str, Handler]], api: str) -> None:
        for method, template, handler in routes:
            self.add(method, template, handler, api)

    def match(
        self, method: str, path: str
    ) -> tuple[Route | None, dict[str, str], bool]:
        """Return (route, path params, whether the path exists with another method)."""
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), True
            path_known = True
        return None, {}, path_known


def api_of_path(path: str) -> str:
    """Which API a path belongs to: shapes the error documents for it."""
    if path.startswith("/_emulator/"):
        return "control"
    if (
        path.startswith("/v2/")
        or path.startswith("/.well-known/")
        or path == "/jwk.json"
    ):
        return "auth"
    return "transfer"


def error_response(exc: Exception, req: Request) -> Response:
    """Render one of our error exceptions as the document its API sends."""
    if isinstance(exc, OAuthError):
        return Response(
            exc.status, {"error": exc.error, "error_description": exc.description}
        )
    if isinstance(exc, AuthAPIError):
        return Response(exc.status, auth_api_error_body(exc, req))
    assert isinstance(exc, GlobusError)
    body: JSONDict = {
        "code": exc.code,
        "message": exc.message,
        "request_id": req.request_id,
        "resource": req.path,
    }
    body.update(exc.extra)
    return Response(exc.status, body)


def auth_api_error_body(exc: AuthAPIError, req: Request) -> JSONDict:
    return {
        "errors": [
            {
                "status": str(exc.status),
                "id": req.request_id,
                "code": exc.code,
                "detail": exc.detail,
                "title": exc.title,
            }
        ],
        "error_description": exc.title,
        "error": exc.title.lower().replace(" ", "_"),
    }


def generic_error(status: int, req: Request, message: str) -> Exception:
    """An error of ``status`` in the shape of the API the request addressed."""
    api = api_of_path(req.path)
    if api == "auth":
        title = {
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
        }.get(status, "Error")
        code = title.upper().replace(" ", "_")
        if status >= 500:
            code, title = "SERVICE_UNAVAILABLE", "Service Unavailable"
        return AuthAPIError(status, code, message, title)
    codes = {
        400: "ClientError.BadRequest",
        401: "ClientError.AuthenticationFailed",
        403: "PermissionDenied",
        404: "ClientError.NotFound",
        405: "ClientError.MethodNotAllowed",
        409: "Conflict",
        429: "RequestLimitExceeded",
        500: "InternalError",
        502: "ExternalError",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }
    return GlobusError(status, codes.get(status, "ServiceUnavailable"), message)


Dispatcher = Callable[[Request], Response]


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that hands each parsed request to ``dispatch``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dispatch: Dispatcher) -> None:
        super().__init__(address, RequestHandler)
        self.dispatch = dispatch


class RequestHandler(BaseHTTPRequestHandler):
    """Parse one request, call the dispatcher, write the answer."""

    server: EmulatorHTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "globus-auto-emulator"
    timeout = 30  # a client that stops sending mid-request is dropped, not waited on

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        req = Request(
            method=self.command,
            path=parsed.path or "/",
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=b"",
        )
        problem = self._read_body(req)
        if problem is not None:
            self.close_connection = True
            self._write(error_response(problem, req), req)
            return
        try:
            resp = self.server.dispatch(req)
        except Exception:  # the last line of defence: never a traceback page
            log.exception("emulator: unhandled error for %s %s", req.method, req.path)
            resp = error_response(generic_error(500, req, "Internal error"), req)
        self._write(resp, req)

    def _read_body(self, req: Request) -> Exception | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return generic_error(400, req, "Chunked request bodies are not supported")
        raw_length = self.headers.get("Content-Length", "0") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return generic_error(400, req, "Invalid Content-Length header")
        if length < 0:
            return generic_error(400, req, "Invalid Content-Length header")
        if length > MAX_BODY_BYTES:
            return generic_error(
                400, req, f"Request body too large (limit {MAX_BODY_BYTES} bytes)"
            )
        try:
            req.body = self.rfile.read(length) if length else b""
        except OSError:
            return generic_error(400, req, "Could not read the request body")
        if len(req.body) != length:
            return generic_error(400, req, "Request body shorter than Content-Length")
        return None

    def _write(self, resp: Response, req: Request) -> None:
        payload = resp.encode()
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Request-Id", req.request_id)
            for name, value in resp.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True
