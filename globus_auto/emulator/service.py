"""The ``Emulator``: one HTTP service on loopback speaking Transfer and Auth.

Usage::

    with Emulator(collections={cid: Path("/tmp/a")}, clients={client_id: None}) as emu:
        os.environ["GLOBUS_SDK_SERVICE_URL_TRANSFER"] = emu.url
        os.environ["GLOBUS_SDK_SERVICE_URL_AUTH"] = emu.url
        ...

Test controls live under ``/_emulator/`` (never part of Globus) and have
Python twins: ``set_collection``, ``set_task_status``, ``task_options``,
``set_limits``, ``add_identity``, ``add_faults``, ``auth_control``
(``age_sessions``), ``stats``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from globus_auto.emulator.auth import AuthService
from globus_auto.emulator.auth_records import DEFAULT_ACCESS_TOKEN_LIFETIME
from globus_auto.emulator.controls import (
    COLLECTION_CONTROL,
    LIMITS_CONTROL,
    UNSET,
    Unset,
    apply_policy,
    bad_request,
    control_body,
    make_collection,
)
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
from globus_auto.emulator.state import ENTITY_TYPES, NOTIFICATION_KINDS, EmulatorState
from globus_auto.emulator.tasks import Task
from globus_auto.emulator.transfer import TransferService


def _bad(message: str) -> GlobusError:
    return bad_request(message)


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
            coll = make_collection(
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
                "notification_mails": {
                    kind: stats.notification_mails[kind] for kind in NOTIFICATION_KINDS
                },
            }

    def set_collection(
        self,
        collection_id: str,
        *,
        connected: bool | None = None,
        paused: bool | None = None,
        entity_type: str | None = None,
        high_assurance: bool | None = None,
        display_name: str | None = None,
        requires_consent: bool | Unset | None = UNSET,
        session_required_single_domain: list[str] | Unset | None = UNSET,
        session_required_mfa: bool | None = None,
        session_max_age: int | Unset | None = UNSET,
        session_required_policies: list[str] | Unset | None = UNSET,
    ) -> None:
        """Take a collection offline/online, change what it is (entity type,
        high assurance, name), override whether it needs data_access consent
        (None: back to what its entity type says), or set its authentication
        policy (None clears a requirement)."""
        if entity_type is not None and entity_type not in ENTITY_TYPES:
            raise _bad(f"entity_type must be one of {', '.join(ENTITY_TYPES)}")
        with self.state.lock:
            collection = self.state.collection(collection_id)
            if connected is not None:
                collection.connected = connected
            if paused is not None:
                collection.paused = paused
            if entity_type is not None:
                collection.entity_type = entity_type
            if high_assurance is not None:
                collection.high_assurance = high_assurance
            if display_name is not None:
                collection.display_name = display_name
            apply_policy(
                collection,
                {
                    "consent_override": requires_consent,
                    "session_required_single_domain": session_required_single_domain,
                    "session_required_mfa": session_required_mfa,
                    "session_max_age": session_max_age,
                    "session_required_policies": session_required_policies,
                },
            )
            self.transfer.wakeup.notify_all()

    def set_task_status(
        self, task_id: str, status: str, *, nice_status: str | None = None
    ) -> None:
        """Make a task INACTIVE (its work pauses; nice_status defaults to
        "CREDENTIALS_EXPIRED", unverified) or ACTIVE again (work resumes)."""
        if status not in ("ACTIVE", "INACTIVE"):
            raise _bad("status must be ACTIVE or INACTIVE")
        with self.state.lock:
            task = self._known_task(task_id)
            if task.done:
                raise _bad(f"Task '{task.task_id}' is already {task.status}")
            self.transfer.worker.set_status(task, status, nice_status)

    def task_options(self, task_id: str) -> JSONDict:
        """What a task was submitted with, notify_on_* flags included (the real
        task document does not show those: CommanderPho/PhoGlobusHelpers
        compatibility_objects/Tasks.py lists a real document's keys)."""
        with self.state.lock:
            task = self._known_task(task_id)
            return {
                "task_id": task.task_id,
                "owner_id": task.owner_id,
                "status": task.status,
                "options": dict(task.options),
            }

    def set_limits(
        self,
        *,
        task_deadline_seconds: int | None = None,
        retry_seconds: float | None = None,
        ls_size_limit: int | None = None,
        skipped_errors_page: int | None = None,
        cancel_seconds: float | None = None,
    ) -> JSONDict:
        """Shrink service limits for tests (see ``state.Limits``); a new
        deadline applies to tasks submitted afterwards. Returns the limits."""
        with self.state.lock:
            limits = self.state.limits
            if task_deadline_seconds is not None:
                limits.task_deadline_seconds = task_deadline_seconds
            if retry_seconds is not None:
                limits.retry_seconds = float(retry_seconds)
            if ls_size_limit is not None:
                limits.ls_size_limit = ls_size_limit
            if skipped_errors_page is not None:
                if skipped_errors_page < 1:
                    raise _bad("skipped_errors_page must be at least 1")
                limits.skipped_errors_page = skipped_errors_page
            if cancel_seconds is not None:
                limits.cancel_seconds = float(cancel_seconds)
            self.transfer.wakeup.notify_all()
            return dict(vars(limits))

    def add_identity(self, username: str) -> JSONDict:
        """Link an identity ``name@domain`` to the emulated person's account
        (its domain is what follows the @); returns its identity document."""
        with self.state.lock:
            try:
                return dict(self.auth.person.link(username))
            except ValueError as why:
                raise _bad(str(why)) from None

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
        age_sessions: float = 0,
    ) -> None:
        """Simulate lapsed (expired) or revoked logins, or login sessions
        ``age_sessions`` seconds older than they are."""
        self.auth.control(
            {
                "expire_access_tokens": expire_access_tokens,
                "expire_refresh_tokens": expire_refresh_tokens,
                "revoke_all": revoke_all,
                "age_sessions": age_sessions,
            }
        )

    def expire_access_tokens(self) -> None:
        self.auth_control(expire_access_tokens=True)

    def expire_refresh_tokens(self) -> None:
        self.auth_control(expire_refresh_tokens=True)

    def revoke_all_tokens(self) -> None:
        self.auth_control(revoke_all=True)

    def age_sessions(self, seconds: float) -> None:
        self.auth_control(age_sessions=seconds)

    def _known_task(self, task_id: str) -> Task:
        task = self.transfer.tasks.get(task_id.lower())
        if task is None:
            raise GlobusError(
                404, "ClientError.NotFound", f"No task found with id '{task_id}'"
            )
        return task

    def _control_routes(self) -> list[tuple[str, str, Any]]:
        return [
            ("POST", "/_emulator/collections/{id}", self._http_collection),
            ("POST", "/_emulator/tasks/{id}", self._http_task_status),
            ("GET", "/_emulator/tasks/{id}", self._http_task_options),
            ("POST", "/_emulator/limits", self._http_limits),
            ("GET", "/_emulator/limits", self._http_limits),
            ("POST", "/_emulator/identities", self._http_identity),
            ("POST", "/_emulator/faults", self._http_faults),
            ("POST", "/_emulator/auth", self._http_auth),
            ("GET", "/_emulator/stats", self._http_stats),
        ]

    def _http_collection(self, req: Request, collection_id: str) -> Response:
        body = control_body(req, COLLECTION_CONTROL)
        self.set_collection(collection_id, **body)
        return Response(200, {"ok": True})

    def _http_task_status(self, req: Request, task_id: str) -> Response:
        body = control_body(req, {"status": "str", "nice_status": "str"})
        if "status" not in body:
            raise _bad("Missing field 'status'")
        self.set_task_status(task_id, **body)
        return Response(200, {"ok": True})

    def _http_task_options(self, req: Request, task_id: str) -> Response:
        return Response(200, self.task_options(task_id))

    def _http_limits(self, req: Request) -> Response:
        body = control_body(req, LIMITS_CONTROL) if req.method == "POST" else {}
        return Response(200, self.set_limits(**body))

    def _http_identity(self, req: Request) -> Response:
        body = control_body(req, {"username": "str"})
        if "username" not in body:
            raise _bad("Missing field 'username'")
        return Response(200, self.add_identity(body["username"]))

    def _http_faults(self, req: Request) -> Response:
        body = control_body(
            req,
            {
                "fail_tasks": "int",
                "http_status": "int",
                "path_prefix": "str",
                "count": "int",
                "bytes_per_second": "int",
            },
        )
        status = body.get("http_status")
        if status is not None and not 400 <= status <= 599:
            raise _bad("http_status must be between 400 and 599")
        self.add_faults(**body)
        return Response(200, {"ok": True})

    def _http_auth(self, req: Request) -> Response:
        body = control_body(
            req,
            {
                "expire_access_tokens": "bool",
                "expire_refresh_tokens": "bool",
                "revoke_all": "bool",
                "age_sessions": "number",
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
