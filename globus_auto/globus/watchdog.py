"""A deadline for each whole call to Globus, kept by shutting its socket.

A call is one globus-sdk request with all its retries. requests' ``timeout``
bounds the connect and each socket read (``REQUEST_TIMEOUT`` in
:mod:`globus_auto.globus.app`), so a server that drips a byte every few
seconds, or a retried one, would hold a cron run, and its job lock, forever.

Why shutting the socket, of the ways to end a call at its deadline:

- A worker thread given up at the deadline (as :mod:`globus_auto.alerts.deadline`
  does for mail) would leave the call running on: a call that refreshes tokens
  holds the tokens lock (``globus/tokens.py``) meanwhile, so the next job of the
  run would wait on it, and a late answer could still be acted on. Here the
  call ends in its own thread, at a socket operation, so every lock and ``with``
  around it (the tokens lock, a datastore transaction) unwinds as for any
  network error, and nothing runs on after the run has moved on.
- globus-sdk's transport options (``http_timeout``, ``RetryConfig``) bound one
  read and the number of retries, never the total; SIGALRM works in the main
  thread only and raises anywhere, inside SQLite or a token write included.

So every connection a call uses is registered with the call (urllib3
connection classes that register themselves on connect and on each request,
in pools of a requests adapter), a timer shuts those sockets at the deadline,
the blocked read returns at once, the sleep before a retry ends by the
deadline, and no retry starts after it: a call ends within its seconds.
What stays bounded only per operation (each connect and read still within
the time left): a name lookup (the resolver's own timeouts, about 30 s) and,
through a SOCKS proxy, the reads (its pools are left as urllib3 makes them).
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import globus_sdk
import requests
import requests.adapters
import urllib3
from globus_sdk.transport import RequestsTransport, RetryCheckResult, RetryContext
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class CallCutOff(requests.exceptions.Timeout):
    """A call to Globus ended at its deadline (``seconds`` for the whole call)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the call did not finish within {seconds:g} s")
        self.seconds = seconds


class Call:
    """One call to Globus and its deadline; a context manager that arms the timer.

    ``seconds``: how long the whole call may take. ``clock``: a monotonic clock.
    """

    def __init__(
        self, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self.ends = clock() + seconds
        self.cut = False  # True once the deadline shut the call's sockets
        self._lock = threading.Lock()
        self._open = True
        self._connections: list[HTTPConnection] = []
        self._timer = threading.Timer(max(seconds, 0.0), self.cut_off)
        self._timer.daemon = True

    def left(self) -> float:
        """Seconds until the deadline (0 once it has passed)."""
        return max(0.0, self.ends - self.clock())

    def watch(self, connection: HTTPConnection) -> None:
        """Register ``connection`` (its socket is shut at the deadline)."""
        with self._lock:
            if connection not in self._connections:
                self._connections.append(connection)
            if self.cut:
                _shut(connection)

    def cut_off(self) -> None:
        """Shut the sockets of the call, unless it has ended already.

        Why under the lock, and only while open: a connection goes back to
        the pool when its call ends; shutting it later would cut another call.
        """
        with self._lock:
            if not self._open:
                return
            self.cut = True
            for connection in self._connections:
                _shut(connection)

    def __enter__(self) -> Call:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._open = False
            self._connections.clear()
        self._timer.cancel()


def _shut(connection: HTTPConnection) -> None:
    """Shut ``connection``'s socket both ways: a read blocked on it in another
    thread returns at once (a close would not wake it, on Linux)."""
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "globus_auto_globus_call", default=None
)


def current() -> Call | None:
    """The call this thread is in, or None outside any."""
    return _CURRENT.get()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Call]:
    """Run the body as one call of at most ``seconds``.

    A call inside another (a token refresh while a Transfer call sends) ends by
    the outer's deadline too.
    """
    outer = current()
    if outer is not None:
        seconds = min(seconds, outer.left())
    with Call(seconds) as call:
        token = _CURRENT.set(call)
        try:
            yield call
        finally:
            _CURRENT.reset(token)


def stop_retrying_after_deadline(ctx: RetryContext) -> RetryCheckResult:
    """A globus-sdk retry check, registered before the SDK's own: no retry
    once the call's deadline has passed."""
    call = current()
    if call is not None and (call.cut or call.left() <= 0):
        return RetryCheckResult.do_not_retry
    return RetryCheckResult.no_decision


def sleep_within_deadline(
    backoff: Callable[[RetryContext], float],
) -> Callable[[RetryContext], float]:
    """A globus-sdk backoff: ``backoff``'s sleep before a retry (Retry-After
    included), never past the call's deadline.

    Why shorten the sleep rather than skip the retry when time is short: a
    401 is retried once after a token refresh, and refusing that retry would
    read as "log in again" when the login is fine.
    """

    def within(ctx: RetryContext) -> float:
        wait = backoff(ctx)
        call = current()
        return wait if call is None else min(wait, call.left())

    return within


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that registers itself with the current call when it
    connects and when it sends a request (a pooled one is reused)."""

    def connect(self) -> None:
        _watch(self)
        super().connect()

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    pass


def _watch(connection: HTTPConnection) -> None:
    call = current()
    if call is not None:
        call.watch(connection)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_STOCK_POOLS: Mapping[str, type[HTTPConnectionPool]] = {
    "http": HTTPConnectionPool,
    "https": HTTPSConnectionPool,
}
_WATCHED_POOLS: dict[str, type[HTTPConnectionPool]] = {
    "http": _WatchedHTTPPool,
    "https": _WatchedHTTPSPool,
}


def _watched(manager: urllib3.PoolManager) -> urllib3.PoolManager:
    """``manager`` making watched pools, unless it makes its own kind (SOCKS)."""
    if dict(manager.pool_classes_by_scheme) == dict(_STOCK_POOLS):
        manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
    return manager


class DeadlineAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections the current call watches, and
    whose connect and read timeouts never reach past the call's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watched(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **kwargs)
        return _watched(manager)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        call = current()
        if call is not None:
            timeout = _within(call, timeout)
        return super().send(request, stream, timeout, verify, cert, proxies)


def _within(call: Call, timeout: Any) -> tuple[float, float]:
    """requests' ``timeout`` (None, seconds, or a (connect, read) pair), each
    part cut to the time ``call`` has left; CallCutOff if none is left."""
    left = call.left()
    if call.cut or left <= 0:
        raise CallCutOff(call.seconds)
    if isinstance(timeout, tuple):
        connect, read = timeout
    else:
        connect = read = timeout
    return (
        left if connect is None else min(float(connect), left),
        left if read is None else min(float(read), left),
    )


class DeadlineTransport(RequestsTransport):
    """globus-sdk's transport, each of whose calls (``request``: one request
    and all its retries) ends within ``seconds``; each socket operation within
    ``http_timeout`` as before. A call cut at its deadline raises
    ``GlobusTimeoutError`` around :class:`CallCutOff`, whether the shut
    socket surfaced as a broken connection or as a short answer.

    Built on the transport's public interface (``session``, ``request``),
    the same in globus-sdk 4.0 and 4.10 (``tests/unit/test_sdk_surface.py``).
    """

    def __init__(self, seconds: float, http_timeout: float) -> None:
        super().__init__(http_timeout=http_timeout)
        self.call_seconds = seconds
        adapter = DeadlineAdapter()
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        with deadline(self.call_seconds) as call:
            try:
                response = super().request(method, url, **kwargs)
            except globus_sdk.NetworkError as exc:
                if not call.cut:
                    raise
                raise _cut_off(call) from exc
            if call.cut:
                # What was read stopped where the socket was shut: http.client
                # takes an end of file amid the headers for their end, so a
                # part of an answer can look like a whole one.
                raise _cut_off(call)
            return response


def _cut_off(call: Call) -> globus_sdk.GlobusTimeoutError:
    cut = CallCutOff(call.seconds)
    return globus_sdk.GlobusTimeoutError(str(cut), cut)
