"""Bounded network reads: a whole-request deadline, a minimum download rate and size caps counted after
decompression, for the polite session (scrapers/http.py) and for yt-dlp's requests (scrapers/youtube/guard.py).

requests' `timeout` bounds each socket read, not a request: a server that sends one byte a second never
trips it, in the status line, the headers or the body. A `Watch` bounds the whole request instead. Every
socket opened or reused for the request is attached to it (`watching` marks the request in flight; the
connection classes `watch_adapter` installs attach their sockets), and a watchdog thread shuts those sockets
down when the rule is broken, which wakes any blocked read. The reader then sees a broken or short
body and, because `Watch.fired` says why, reports FetchError("timeout", ...) instead of a partial answer.

The rules:
- a page or API answer (status line, headers and body) must be complete within `deadline_s` (--timeout);
- a download must have its headers within `deadline_s`; then its body must keep arriving at
  `min_rate` bytes/s or more, measured over windows of `window_s` seconds (--min-rate over --timeout):
  a slow but steady mirror finishes, a drip is cut within about one window, and the download's retry
  resumes from the bytes already written.

`read_capped` reads a body in chunks, decompressed (gzip/deflate/br as the server encoded it), and stops
with FetchError("too_large") as soon as the decompressed bytes exceed the cap: a small compressed bomb
never inflates in memory.
"""
from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Callable, Iterator, List, Optional

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

CHUNK = 8 * 1024  # small, so a dropped connection loses little (a short read discards its chunk)
POLL_S = 0.05  # how often a watchdog looks at its request


class FetchError(Exception):
    """A request that failed for good; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class MinRate:
    """Plain rule: too slow when fewer than `bytes_per_s * window_s` bytes arrived in a window of `window_s`
    seconds. Tumbling windows from `start`; `total` is every byte so far (only ever grows)."""

    def __init__(self, bytes_per_s: float, window_s: float, start: float, total: int = 0):
        self.bytes_per_s, self.window_s = bytes_per_s, window_s
        self.need = bytes_per_s * window_s
        self.mark_t, self.mark_total = start, total

    def too_slow(self, total: int, now: float) -> bool:
        if now - self.mark_t < self.window_s:
            return False
        if total - self.mark_total < self.need:
            return True
        self.mark_t, self.mark_total = now, total
        return False

    def describe(self) -> str:
        return (f"fewer than {self.need:.0f} bytes arrived in {self.window_s:g} s (--min-rate "
                f"{self.bytes_per_s / 1024:g} KB/s over --timeout windows)")


class Watch:
    """The watchdog of one request: a deadline for the whole request, or (once `body_started` gives it a
    MinRate) for the headers only and then the rate rule. `fire` shuts the attached sockets down."""

    def __init__(self, deadline_s: Optional[float], what: str = "the request", clock: Callable[[], float] = time.monotonic,
                 poll_s: float = POLL_S):
        self.deadline_s, self.what, self.clock, self.poll_s = deadline_s, what, clock, poll_s
        self.started = clock()
        self.deadline_at = None if not deadline_s else self.started + deadline_s
        self.rate: Optional[MinRate] = None
        self.total = 0  # body bytes so far (the reader adds, the watchdog only reads)
        self.fired: Optional[str] = None
        self._socks: List[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- the rule --------------------------------------------------------------------------------
    def body_started(self, rate: Optional[MinRate]) -> None:
        """A download's headers are in: its deadline ends, and `rate` judges the body from now on (None: nothing
        does; --min-rate 0)."""
        self.rate, self.deadline_at = rate, None

    def broken(self, now: float) -> Optional[str]:
        """Why the request must stop now, or None."""
        if self.deadline_at is not None and now >= self.deadline_at:
            return f"{self.what} was not complete within {self.deadline_s:g} s (the whole-request deadline, --timeout)"
        if self.rate is not None and self.rate.too_slow(self.total, now):
            return f"{self.what} stalled: {self.rate.describe()}"
        return None

    # -- the watchdog ----------------------------------------------------------------------------
    def attach(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self._lock:
            if sock not in self._socks:
                self._socks.append(sock)
            fired = self.fired is not None
        if fired:
            _shutdown(sock)

    def fire(self, message: str) -> None:
        with self._lock:
            if self.fired is None:
                self.fired = message
            socks = list(self._socks)
        for s in socks:
            _shutdown(s)

    def start(self) -> "Watch":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="request-watchdog", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(self.poll_s):
            why = self.broken(self.clock())
            if why:
                self.fire(why)
                return

    def stop(self) -> None:
        """The request is over (answered, failed or abandoned): the watchdog ends, no socket is touched."""
        self._done.set()
        with self._lock:
            self._socks.clear()

    def error(self) -> FetchError:
        return FetchError("timeout", self.fired or f"{self.what} timed out")


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# -------------------------------------------------------------------------------------------------
# Connections that attach their sockets to the request in flight
# -------------------------------------------------------------------------------------------------
_current = threading.local()


@contextlib.contextmanager
def watching(watch: Optional[Watch]) -> Iterator[Optional[Watch]]:
    """Mark `watch` as the request in flight on this thread: connections opened or reused meanwhile attach to it."""
    previous = getattr(_current, "watch", None)
    _current.watch = watch
    try:
        yield watch
    finally:
        _current.watch = previous


def current_watch() -> Optional[Watch]:
    return getattr(_current, "watch", None)


class _Attaching:
    def _new_conn(self):  # a fresh TCP connection (before any TLS handshake)
        sock = super()._new_conn()
        watch = current_watch()
        if watch is not None:
            watch.attach(sock)
        return sock

    def request(self, *args, **kwargs):  # every request, including on a kept-alive connection
        watch = current_watch()
        if watch is not None:
            watch.attach(self.sock)
        return super().request(*args, **kwargs)


class WatchedHTTPConnection(_Attaching, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Attaching, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


WATCHED_POOLS = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


def watch_adapter(adapter: HTTPAdapter) -> HTTPAdapter:
    """Make an existing requests adapter's connections (direct or through an HTTP proxy) attach to the request
    in flight; SOCKS proxies keep their own connection classes (a blocked read there ends at the socket
    timeout, and the readers still check the deadline between chunks)."""
    adapter.poolmanager.pool_classes_by_scheme = dict(WATCHED_POOLS)
    make_proxy_manager = adapter.proxy_manager_for

    def proxy_manager_for(proxy, **proxy_kwargs):
        manager = make_proxy_manager(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:
            manager.pool_classes_by_scheme = dict(WATCHED_POOLS)
        return manager

    adapter.proxy_manager_for = proxy_manager_for
    return adapter


def mount_watched(session: requests.Session) -> requests.Session:
    """`session` with adapters whose connections attach to the request in flight (`watching`)."""
    for prefix in ("http://", "https://"):
        session.mount(prefix, watch_adapter(HTTPAdapter()))
    return session


# -------------------------------------------------------------------------------------------------
# Reading
# -------------------------------------------------------------------------------------------------
def read_chunk(raw, size: int = CHUNK) -> bytes:
    """Up to `size` decompressed bytes from a urllib3 response, returning as soon as some arrived."""
    read1 = getattr(raw, "read1", None)
    if read1 is not None:
        return read1(size, decode_content=True)
    return raw.read(size, decode_content=True)


def read_capped(read: Callable[[int], bytes], cap: int, what: str, watch: Optional[Watch] = None,
                chunk: int = CHUNK) -> bytes:
    """The whole body from `read(n)` (returns b'' at the end), at most `cap` bytes after decompression:
    FetchError('too_large') beyond it, FetchError('timeout') when `watch` fired (even if the body then
    looked complete: a connection cut short ends a body without Content-Length)."""
    parts: List[bytes] = []
    total = 0
    while True:
        if watch is not None and watch.fired:
            raise watch.error()
        data = read(chunk)
        if not data:
            break
        total += len(data)
        if watch is not None:
            watch.total = total
        if total > cap:
            raise FetchError("too_large", f"{what} is larger than {cap} bytes (decompressed)")
        parts.append(data)
    if watch is not None and watch.fired:
        raise watch.error()
    return b"".join(parts)


# Errors a broken or cut connection raises while a request or its body is read (a body that does not
# decompress, urllib3's DecodeError, is caught before these: it is no network error).
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                  urllib3.exceptions.HTTPError, OSError)
DECODE_ERRORS = (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError)


def is_timeout(exc: BaseException) -> bool:
    """`exc` (or what it wraps) is a socket read or connect timing out."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (requests.Timeout, urllib3.exceptions.TimeoutError, socket.timeout, TimeoutError)):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
