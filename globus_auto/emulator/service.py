"""The ``Emulator``: one HTTP service on loopback speaking Transfer and Auth.

Usage::

    with Emulator(collections={cid: Path("/tmp/a")}, clients={client_id: None}) as emu:
        os.environ["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = emu.url
        os.environ["GLOBUS_SDK_SERVICE_URL_AUTH"] = emu.url
        ...

Test controls live under ``/_emulator/`` (never part of Globus) and have
Python twins: ``set_collection``, ``add_faults``, ``auth_control``, ``stats``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from globus_auto.emulator.auth import DEFAULT_ACCESS_TOKEN_LIFETIME, AuthService
from globus_auto.emulator.server import (
    EmulatorHTTPServer,
    GlobusError,
    JSONDict,
    Request,
    Response,
    Router,
    error_response,
    generic_error,
)
from globus_auto.emulator.state import ENTITY_TYPES, Collection, EmulatorState
from globus_auto.emulator.transfer import TransferService

COLLECTION_OPTIONS = {"entity_type", "high_assurance", "display_name"}


def _bad(message: str) -> GlobusError:
    return GlobusError(400, "ClientError.BadRequest", message)


def _make_collection(cid: str, root: Path, options: dict[str, Any]) -> Collection:
    unknown = set(options) - COLLECTION_OPTIONS
    if unknown:
        raise ValueError(f"unknown collection options: {sorted(unknown)}")
    entity_type = options.get("entity_type", "GCSv5_mapped_collection")
    if entity_type not in ENTITY_TYPES:
        raise ValueError(f"unknown entity_type {entity_type!r}")
    canonical = str(uuid.UUID(cid))
    return Collection(
        id=canonical,
        root=Path(root).resolve(),
        display_name=str(
            options.get("display_name", f"Emulated collection {canonical[:8]}")
        ),
        entity_type=entity_type,
        high_assurance=bool(options.get("high_assurance", False)),
    )


class Emulator:
    """A local Globus Transfer + Auth service whose collections are directories.

    ``collections`` maps collection ids to local root directories; ``clients``
    maps client ids to a secret (confidential client) or None (native app).
    """

    def __init__(
        self,
        collections: dict[str, Path],
        clients: dict[str, str | None],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        collection_options: dict[str, dict[str, Any]] | None = None,
        access_token_lifetime: int = DEFAULT_ACCESS_TOKEN_LIFETIME,
    ) -> None:
        options = {str(uuid.UUID(k)): v for k, v in (collection_options or {}).items()}
        built = {}
        for cid, root in collections.items():
            coll = _make_collection(
                cid, Path(root), options.get(str(uuid.UUID(cid)), {})
            )
            built[coll.id] = coll
        self.state = EmulatorState(built)
        self.auth = AuthService(
            self.state, clients, access_token_lifetime=access_token_lifetime
        )
        self.transfer = TransferService(self.state, self.auth)
        self.router = Router()
        self.router.extend(self.transfer.routes(), "transfer")
        self.router.extend(self.auth.routes(), "auth")
        self.router.extend(self._control_routes(), "control")
        self.host = host
        self.port = port
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """The base URL, with a trailing slash (for both SDK service URLs)."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> Emulator:
        """Bind, start serving and the task worker; return when ready."""
        self._server = EmulatorHTTPServer((self.host, self.port), self.dispatch)
        self.port = self._server.server_address[1]
        self.auth.base_url = self.url
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="globus-emulator-http",
            daemon=True,
        )
        self._thread.start()
        self.transfer.start()
        return self

    def stop(self) -> None:
        """Stop the worker and the server; safe to call twice."""
        self.transfer.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no task is ACTIVE; return False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.transfer.idle():
                return True
            time.sleep(0.01)
        return self.transfer.idle()

    # --------------------------------------------------------------- controls

    def stats(self) -> JSONDict:
        with self.state.lock:
            statuses: dict[str, int] = {}
            for task in self.transfer.tasks.values():
                statuses[task.status] = statuses.get(task.status, 0) + 1
            stats = self.state.stats
            return {
                "tasks_submitted": stats.tasks_submitted,
                "duplicate_submissions": stats.duplicate_submissions,
                "tasks": statuses,
                "bytes_copied": stats.bytes_copied,
                "bytes_checksummed": stats.bytes_checksummed,
                "requests": dict(stats.requests),
            }

    def set_collection(
        self,
        collection_id: str,
        *,
        connected: bool | None = None,
        requires_consent: bool | None = None,
        paused: bool | None = None,
    ) -> None:
        """Take a collection offline/online, or make it need data_access consent."""
        with self.state.lock:
            collection = self.state.collection(collection_id)
            if connected is not None:
                collection.connected = connected
            if requires_consent is not None:
                collection.requires_consent = requires_consent
            if paused is not None:
                collection.paused = paused
            self.transfer.wakeup.notify_all()

    def add_faults(
        self,
        *,
        fail_tasks: int | None = None,
        http_status: int | None = None,
        path_prefix: str | None = None,
        count: int | None = None,
        bytes_per_second: int | None = None,
    ) -> None:
        """Make the next tasks fail, the next requests error, or copies slow."""
        with self.state.lock:
            faults = self.state.faults
            if fail_tasks is not None:
                faults.fail_tasks = fail_tasks
            if http_status is not None:
                faults.http_status = http_status
                faults.path_prefix = path_prefix or "/"
                faults.http_count = 1 if count is None else count
            if bytes_per_second is not None:
                faults.bytes_per_second = bytes_per_second

    def auth_control(
        self,
        *,
        expire_access_tokens: bool = False,
        expire_refresh_tokens: bool = False,
        revoke_all: bool = False,
    ) -> None:
        """Simulate lapsed (expired) or revoked logins."""
        self.auth.control(
            {
                "expire_access_tokens": expire_access_tokens,
                "expire_refresh_tokens": expire_refresh_tokens,
                "revoke_all": revoke_all,
            }
        )

    def expire_access_tokens(self) -> None:
        self.auth_control(expire_access_tokens=True)

    def expire_refresh_tokens(self) -> None:
        self.auth_control(expire_refresh_tokens=True)

    def revoke_all_tokens(self) -> None:
        self.auth_control(revoke_all=True)

    def _control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/_emulator/collections/{id}", self._http_collection),
            ("POST", "/_emulator/faults", self._http_faults),
            ("POST", "/_emulator/auth", self._http_auth),
            ("GET", "/_emulator/stats", self._http_stats),
        ]

    @staticmethod
    def _control_body(req: Request, allowed: dict[str, type]) -> JSONDict:
        body = req.json()
        for key, value in body.items():
            kind = allowed.get(key)
            if kind is None:
                raise _bad(f"Unknown field '{key}'")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                raise _bad(f"Field '{key}' must be an integer")
            if kind is int and value < 0:
                raise _bad(f"Field '{key}' must not be negative")
            if not isinstance(value, kind):
                raise _bad(f"Field '{key}' must be of type {kind.__name__}")
        return body

    def _http_collection(self, req: Request, collection_id: str) -> Response:
        body = self._control_body(
            req, {"connected": bool, "requires_consent": bool, "paused": bool}
        )
        self.set_collection(collection_id, **body)
        return Response(200, {"ok": True})

    def _http_faults(self, req: Request) -> Response:
        body = self._control_body(
            req,
            {
                "fail_tasks": int,
                "http_status": int,
                "path_prefix": str,
                "count": int,
                "bytes_per_second": int,
            },
        )
        status = body.get("http_status")
        if status is not None and not 400 <= status <= 599:
            raise _bad("http_status must be between 400 and 599")
        self.add_faults(**body)
        return Response(200, {"ok": True})

    def _http_auth(self, req: Request) -> Response:
        body = self._control_body(
            req,
            {
                "expire_access_tokens": bool,
                "expire_refresh_tokens": bool,
                "revoke_all": bool,
            },
        )
        self.auth_control(**body)
        return Response(200, {"ok": True})

    def _http_stats(self, req: Request) -> Response:
        return Response(200, self.stats())

    # -------------------------------------------------------------- dispatch

    def dispatch(self, req: Request) -> Response:
        """Route one request; count Globus routes; inject HTTP faults."""
        route, params, path_known = self.router.match(req.method, req.path)
        try:
            if route is not None and route.api != "control":
                with self.state.lock:
                    self.state.stats.requests[f"{route.method} {route.template}"] += 1
                status = self.state.take_http_fault(req.path)
                if status:
                    raise generic_error(
                        status, req, "Injected failure (emulator fault)"
                    )
            if route is None:
                if path_known:
                    raise generic_error(405, req, f"Method {req.method} not allowed")
                raise generic_error(404, req, f"No such resource: {req.path}")
            req.template = route.template
            return route.handler(req, *params.values())
        except Exception as exc:
            if not _is_api_error(exc):
                raise
            return error_response(exc, req)


def _is_api_error(exc: Exception) -> bool:
    from globus_auto.emulator.server import AuthAPIError, OAuthError

    return isinstance(exc, (GlobusError, AuthAPIError, OAuthError))
