"""yt-dlp's own requests under the scraper's rules: the allow-list, bounded reads and size caps.

yt-dlp fetches pages and media itself (YoutubeDL.urlopen -> a RequestDirector -> request handlers), so the
polite session's rules are applied inside it:

- `GuardedYoutubeDL` has one request handler, `GuardedRequestsRH` (yt-dlp's requests handler), and checks
  every URL it is asked to open: http(s) on an allowed host, or `Refused("host_not_allowed")` before
  anything is sent (a `file://` stream URL is refused, never read).
- The handler's session checks each redirect target the same way before following it.
- Each request has a `scrapers.streaming.Watch`: a page must be complete within `timeout` seconds and at most
  `max_page_bytes` (decompressed); a media download (`YoutubeDL.dl`) must have its headers within `timeout`,
  then keep `min_rate` bytes/s, and may not pass `max_file_bytes` counted from the resume offset, whatever
  Content-Length says (`Refused("too_large")`, not retried).

Refusals and timeouts are kept in `Guard.events`, so the caller names the reason of a failed video
(host_not_allowed, too_large, timeout) whatever text yt-dlp wraps them in.
"""
from __future__ import annotations

import dataclasses
import re
import urllib.parse
from typing import List, Optional, Tuple

from yt_dlp import YoutubeDL
from yt_dlp.networking._requests import RequestsResponseAdapter, RequestsRH, RequestsSession
from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError

from scrapers.http import FetchError, host_allowed
from scrapers.streaming import MinRate, Watch, read_chunk, watch_adapter, watching


class Refused(RequestError):
    """A request the scraper's rules forbid (`reason`: host_not_allowed, too_large); yt-dlp does not retry it."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclasses.dataclass
class Limits:
    allowed_hosts: Tuple[str, ...]
    timeout: float = 30.0
    min_rate: float = 1024.0  # bytes/s for media bodies (0: no minimum)
    max_page_bytes: int = 50 * 2 ** 20
    max_file_bytes: Optional[int] = None


class Guard:
    """The rules one YoutubeDL's requests follow, whether a media download is running, and what went wrong."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.media = False
        self.events: List[FetchError] = []

    def refuse(self, reason: str, message: str) -> Refused:
        self.events.append(FetchError(reason, message))
        return Refused(reason, message)

    def check(self, url: str) -> None:
        """Refused unless `url` is http(s) on an allowed host."""
        parts = urllib.parse.urlsplit(url or "")
        if parts.scheme.lower() not in ("http", "https"):
            raise self.refuse("host_not_allowed", f"not an http(s) URL, refused: {url[:200]!r}")
        if not host_allowed(parts.hostname or "", self.limits.allowed_hosts):
            raise self.refuse("host_not_allowed", f"{parts.hostname!r} is not on the allow-list "
                                                  f"{self.limits.allowed_hosts} ({url[:200]})")

    def timed_out(self, watch: Watch) -> TransportError:
        """A retryable yt-dlp error for a request whose watch fired (recorded as a timeout)."""
        self.events.append(watch.error())
        return TransportError(f"timeout: {watch.fired}")

    def failure(self) -> Optional[FetchError]:
        """The reason to report for a failed call: a refusal first, else a timeout, else None."""
        for e in self.events:
            if e.reason != "timeout":
                return e
        return self.events[-1] if self.events else None


class _GuardedSession(RequestsSession):
    guard: Guard

    def rebuild_method(self, prepared_request, response):
        super().rebuild_method(prepared_request, response)
        self.guard.check(prepared_request.url)  # a redirect target, before it is requested


def _range_start(request) -> int:
    m = re.match(r"bytes=([0-9]{1,18})-", request.headers.get("Range", "") or "")
    return int(m.group(1)) if m else 0


class GuardedResponse(RequestsResponseAdapter):
    """A response read in chunks as they arrive, under its watch and its size cap (`guarded` makes one)."""

    watch: Watch
    guard: Guard
    start: int
    count: int
    cap: Optional[int]
    what: str

    def _take(self, data: bytes) -> bytes:
        self.count += len(data)
        self.watch.total = self.count
        if self.cap is not None and self.start + self.count > self.cap:
            self.watch.stop()
            raise self.guard.refuse("too_large", f"{self.what} {self.url} is larger than {self.cap} bytes")
        if self.watch.fired:
            raise self.guard.timed_out(self.watch)
        if not data or self.fp.closed or getattr(self.fp, "length_remaining", None) == 0:
            self.watch.stop()  # complete: its connection may go back to the pool, the watch must let go of it
        return data

    def _real_read(self, amt: Optional[int] = None) -> bytes:
        if amt is None:
            parts = []
            while True:
                data = self._take(read_chunk(self.fp))
                if not data:
                    return b"".join(parts)
                parts.append(data)
        return self._take(read_chunk(self.fp, amt))

    def read(self, amt: Optional[int] = None) -> bytes:
        try:
            return super().read(amt)
        except TransportError as exc:
            if self.watch.fired and not str(exc.msg or "").startswith("timeout:"):
                raise self.guard.timed_out(self.watch) from exc
            raise

    def close(self):
        self.watch.stop()
        return super().close()


def guarded(res: RequestsResponseAdapter, watch: Watch, guard: Guard, start: int) -> GuardedResponse:
    """`res` itself turned into a GuardedResponse (a second adapter over the same body would close it when the
    first is collected: io.IOBase closes on __del__)."""
    res.__class__ = GuardedResponse
    res.watch, res.guard, res.start, res.count = watch, guard, start, 0
    limits = guard.limits
    if guard.media:
        watch.body_started(MinRate(limits.min_rate, limits.timeout, watch.clock()) if limits.min_rate else None)
        res.cap, res.what = limits.max_file_bytes, "the download"
    else:
        res.cap, res.what = limits.max_page_bytes, "the page"
    return res


class GuardedRequestsRH(RequestsRH):
    """yt-dlp's requests handler with the allow-list, redirect checks, watches and size caps of `guard`."""

    guard: Guard

    def _create_instance(self, cookiejar, legacy_ssl_support=None):
        session = super()._create_instance(cookiejar, legacy_ssl_support)
        session.__class__ = _GuardedSession  # the same session, checking each redirect before it is sent
        session.guard = self.guard
        for adapter in set(session.adapters.values()):
            watch_adapter(adapter)
        return session

    def _send(self, request):
        guard = self.guard
        guard.check(request.url)
        watch = Watch(guard.limits.timeout, "the download" if guard.media else "the page").start()
        try:
            with watching(watch):
                res = super()._send(request)
        except HTTPError as exc:  # an error status: its body is still read under the watch
            if isinstance(exc.response, RequestsResponseAdapter):
                guarded(exc.response, watch, guard, 0)
            else:
                watch.stop()
            raise
        except TransportError as exc:
            watch.stop()
            if watch.fired:
                raise guard.timed_out(watch) from exc
            raise
        except BaseException:
            watch.stop()
            raise
        start = _range_start(request) if res.status == 206 else 0
        return guarded(res, watch, guard, start)


class GuardedYoutubeDL(YoutubeDL):
    """YoutubeDL whose every request goes through `GuardedRequestsRH` under `guard`."""

    def __init__(self, params, guard: Guard):
        self.guard = guard
        super().__init__(params)

    def build_request_director(self, handlers, preferences=None):
        director = super().build_request_director([GuardedRequestsRH], preferences)
        for rh in director.handlers.values():
            rh.guard = self.guard
        return director

    def urlopen(self, req):
        url = req if isinstance(req, str) else (getattr(req, "url", None) or getattr(req, "full_url", ""))
        self.guard.check(url)  # before yt-dlp picks a handler (file:// would otherwise be an uncaught error)
        return super().urlopen(req)

    def dl(self, name, info, subtitle=False, test=False):
        self.guard.media = True
        try:
            return super().dl(name, info, subtitle, test)
        finally:
            self.guard.media = False
