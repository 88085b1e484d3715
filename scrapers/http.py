"""The polite HTTP session every scraper uses.

Identifying User-Agent, hosts on an allow-list (redirects included), robots.txt, a per-host rate limit
with jitter, retries with exponential backoff on 429 (honouring Retry-After up to `max_retry_after`;
a longer wait is FetchError("rate_limited"), never slept) / 5xx / timeouts / dropped connections, and
downloads that resume with HTTP Range into `<dest>.part` and are renamed into place only when complete.

Every request is bounded (scrapers/streaming.py): a page or API answer must be complete within `timeout`
seconds and at most `max_body_bytes` after decompression; a download must have its headers within
`timeout`, then keep arriving at `min_rate` bytes/s (over `timeout`-second windows), and may not write
more than `max_bytes`, whatever Content-Length says.
"""
from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import logging
import os
import random
import re
import threading
import time
import urllib.parse
import urllib.robotparser
from typing import Callable, Dict, Iterable, Optional, Tuple

import requests

from scrapers.streaming import (CHUNK, DECODE_ERRORS, NETWORK_ERRORS, FetchError, MinRate, Watch, is_timeout,
                                mount_watched, read_capped, read_chunk, watching)

log = logging.getLogger(__name__)

USER_AGENT = ("speaker-datasets-scraper/0.1 (speaker-recognition research; "
              "+https://github.com/speaker-datasets; polite: robots.txt, rate limited)")
DEFAULT_ALLOWED_HOSTS = ("librivox.org", "archive.org")
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After is a failure (rate_limited), not a wait
MAX_BODY_BYTES = 50 * 2 ** 20  # a page or API answer, decompressed
MIN_RATE = 1024.0  # bytes/s a download must keep up (over `timeout`-second windows); 0: no minimum
MAX_REDIRECTS = 10


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """`host` is one of `allowed` or a subdomain of one (never a mere suffix match: evilarchive.org)."""
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in allowed)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, retry_after: Optional[float] = None,
                  rng: Optional[random.Random] = None) -> float:
    """Exponential backoff with jitter (base * 2**attempt, up to `cap`); Retry-After wins when given (the session
    refuses a Retry-After above its `max_retry_after` before asking)."""
    if retry_after is not None:
        return min(retry_after, 3600.0)
    r = (rng or random).uniform(0.0, 0.25)
    return min(cap, base * (2 ** attempt)) * (1.0 + r)


@dataclasses.dataclass
class Download:
    path: str
    bytes: int
    sha256: str
    resumed_from: int = 0


def connection_failure(exc: BaseException, reason: str) -> str:
    """A short reason for a failed connection: the OS's words ("Connection refused") when the error carries
    them, else the timeout or the exception's name."""
    found = re.search(r"\[Errno -?\d+\] ([^'\"()\]]+)", str(exc))
    if found:
        return found.group(1).strip().rstrip(",.")
    return "no answer within --timeout" if reason == "timeout" else type(exc).__name__


class PoliteSession:
    """requests.Session wrapper: allow-list, robots.txt, per-host spacing, retries, Range resume, bounded reads."""

    def __init__(self, allowed_hosts: Iterable[str] = DEFAULT_ALLOWED_HOSTS, user_agent: str = USER_AGENT,
                 min_interval: float = 1.0, jitter: float = 0.25, max_retries: int = 5,
                 backoff_base: float = 1.0, backoff_cap: float = 60.0, timeout: float = 30.0,
                 max_bytes: int = 2 * 2 ** 30, respect_robots: bool = True,
                 max_retry_after: float = MAX_RETRY_AFTER, max_body_bytes: int = MAX_BODY_BYTES,
                 min_rate: float = MIN_RATE):
        self.allowed_hosts = tuple(h.lower() for h in allowed_hosts)
        self.user_agent = user_agent
        self.min_interval, self.jitter = min_interval, jitter
        self.max_retries, self.backoff_base, self.backoff_cap = max_retries, backoff_base, backoff_cap
        self.timeout, self.max_bytes = timeout, max_bytes
        self.max_retry_after, self.max_body_bytes, self.min_rate = max_retry_after, max_body_bytes, min_rate
        self.respect_robots = respect_robots
        self.session = mount_watched(requests.Session())
        self.session.headers["User-Agent"] = user_agent
        self._robots: Dict[str, Optional[urllib.robotparser.RobotFileParser]] = {}
        self._next_ok: Dict[str, float] = {}
        self._lock = threading.Lock()
        self.requests_made = 0
        self._answered: set = set()  # hosts (host:port) that sent any HTTP answer
        self._unanswered: Dict[str, str] = {}  # host:port -> why the last connection to it failed

    def unreachable(self) -> Dict[str, str]:
        """Hosts (host:port) this session never got an HTTP answer from, every request having failed to connect
        or timed out, with the last reason ("Connection refused", "Name or service not known", ...)."""
        return {host: why for host, why in sorted(self._unanswered.items()) if host not in self._answered}

    # -- policy ---------------------------------------------------------------------------------
    def check_url(self, url: str) -> None:
        """Raise FetchError unless `url` is http(s), on an allowed host and allowed by robots.txt."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError("bad_scheme", f"not an http(s) URL: {url!r}")
        if not host_allowed(parts.hostname or "", self.allowed_hosts):
            raise FetchError("host_not_allowed", f"{parts.hostname!r} is not on the allow-list {self.allowed_hosts}")
        if self.respect_robots and not self._robots_for(url).can_fetch(self.user_agent, url):
            raise FetchError("robots_disallowed", f"robots.txt disallows {url}")

    def _robots_for(self, url: str) -> urllib.robotparser.RobotFileParser:
        parts = urllib.parse.urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._robots:
            rp = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
            try:
                resp, _ = self._send("GET", origin + "/robots.txt")
            except FetchError as exc:  # unreachable robots.txt: be conservative
                if exc.reason == "rate_limited":
                    raise  # the site refuses us for longer than we wait: the caller must know
                log.warning("robots.txt of %s unavailable (%s): treating the host as disallowed", origin, exc)
                rp.disallow_all = True
            else:
                if resp.status_code in (401, 403):
                    rp.disallow_all = True
                elif resp.status_code >= 400:
                    rp.allow_all = True
                else:
                    rp.parse(resp.text.splitlines())
            self._robots[origin] = rp
            delay = rp.crawl_delay(self.user_agent)
            if delay:
                log.info("robots.txt of %s asks for a crawl delay of %s s", origin, delay)
        return self._robots[origin]

    def _wait_turn(self, url: str) -> None:
        """Space requests to one host by `min_interval` (or robots.txt Crawl-delay) plus jitter."""
        host = host_of(url)
        interval = self.min_interval
        rp = self._robots.get(f"{urllib.parse.urlsplit(url).scheme}://{urllib.parse.urlsplit(url).netloc}")
        if rp is not None:
            interval = max(interval, float(rp.crawl_delay(self.user_agent) or 0))
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_ok.get(host, 0.0))
            self._next_ok[host] = start + interval + random.uniform(0, self.jitter * interval)
        if start > now:
            time.sleep(start - now)

    # -- requests -------------------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: Optional[dict] = None,
              read_body: bool = True, wanted: Callable[[int], bool] = lambda status: 200 <= status < 300
              ) -> Tuple[requests.Response, Watch]:
        """One request with retries on 429/5xx/timeouts/connection errors; other statuses are returned.

        With `read_body` the body of a `wanted` status is read (within the deadline, capped after decompression;
        a failure is retried like the request) into `resp.content` (other statuses: no body is read) and the
        watch is over. Without, the caller reads the body and must `watch.stop()` (downloads:
        `watch.body_started` switches it to the minimum rate).
        """
        last, reason = "", "retries_exhausted"
        attempt = redirects = 0
        while True:
            self._wait_turn(url)
            retry_after = None
            watch = Watch(self.timeout, "the answer" if read_body else "the download").start()
            handed_over = False
            try:
                with watching(watch):
                    self.requests_made += 1
                    resp = self.session.request(method, url, headers=headers, stream=True, timeout=self.timeout,
                                                allow_redirects=False)
                    self._answered.add(urllib.parse.urlsplit(url).netloc.lower())
                    if resp.is_redirect:
                        target = urllib.parse.urljoin(url, resp.headers.get("Location", ""))
                        resp.close()
                        redirects += 1
                        if redirects > MAX_REDIRECTS:
                            raise FetchError("too_many_redirects", f"{method} {url}: more than {MAX_REDIRECTS} redirects")
                        self.check_url(target)  # a redirect never leaves the allow-list
                        url = target
                        continue
                    if resp.status_code != 429 and resp.status_code < 500:
                        if read_body and wanted(resp.status_code):
                            resp._content = self._read_body(resp, url, watch)
                        elif read_body:  # a status the caller refuses anyway: its body is not read
                            resp.close()
                            resp._content = b""
                        handed_over = not read_body
                        return resp, watch
                    last = f"HTTP {resp.status_code}"
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    resp.close()
                    if retry_after is not None and retry_after > self.max_retry_after:
                        raise FetchError("rate_limited", f"{method} {url}: HTTP {resp.status_code}, the server asked to "
                                                         f"wait {retry_after:.0f} s, more than --max-retry-after "
                                                         f"{self.max_retry_after:g}")
                    reason = "retries_exhausted"
            except DECODE_ERRORS as exc:
                raise FetchError("bad_encoding", f"{method} {url}: the body does not decompress ({exc})") from None
            except NETWORK_ERRORS as exc:
                if watch.fired:
                    last, reason = watch.fired, "timeout"
                else:
                    last, reason = f"{type(exc).__name__}: {exc}", "timeout" if is_timeout(exc) else "retries_exhausted"
                self._unanswered[urllib.parse.urlsplit(url).netloc.lower()] = connection_failure(exc, reason)
            except FetchError as exc:
                if exc.reason != "timeout":
                    raise
                last, reason = exc.message, "timeout"
            finally:
                if not handed_over:
                    watch.stop()
            if attempt >= self.max_retries:
                break
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_cap, retry_after)
            log.info("%s %s failed (%s); retry %d in %.1f s", method, url, last, attempt + 1, delay)
            time.sleep(delay)
            attempt += 1
        raise FetchError(reason, f"{method} {url}: {last} after {self.max_retries + 1} attempts")

    def _read_body(self, resp: requests.Response, url: str, watch: Watch) -> bytes:
        """The whole (decompressed) body within the watch's deadline, at most `max_body_bytes`."""
        length = resp.headers.get("Content-Length", "")
        if length.isascii() and length.isdigit() and not resp.headers.get("Content-Encoding") \
                and int(length) > self.max_body_bytes:
            resp.close()
            raise FetchError("too_large", f"the answer of {url} is {length} bytes (cap {self.max_body_bytes})")
        try:
            return read_capped(lambda n: read_chunk(resp.raw, n), self.max_body_bytes, f"the answer of {url}", watch)
        finally:
            resp.close()

    def get(self, url: str, headers: Optional[dict] = None, accept: Iterable[int] = ()) -> requests.Response:
        """A checked GET, its body read (bounded); raises FetchError on a non-2xx status not in `accept` (e.g. an
        API's 404 with a body)."""
        self.check_url(url)
        accept = tuple(accept)
        resp, _ = self._send("GET", url, headers=headers, wanted=lambda status: 200 <= status < 300 or status in accept)
        if not 200 <= resp.status_code < 300 and resp.status_code not in accept:
            raise FetchError(f"http_{resp.status_code}", f"GET {url}")
        return resp

    def get_text(self, url: str, accept: Iterable[int] = ()) -> str:
        return self.get(url, accept=accept).text

    def download(self, url: str, dest: str, on_total: Optional[Callable[[Optional[int]], None]] = None,
                 on_bytes: Optional[Callable[[int], None]] = None) -> Download:
        """Download `url` to `dest` via `dest + '.part'`, resuming a partial file with Range.

        A connection dropped or too slow mid-body is retried from where it stopped. The size is checked
        against Content-Length / Content-Range; the bytes written never exceed `max_bytes`, whatever those
        say; `on_total(total)` may raise to refuse a file before its body; `on_bytes(n)` hears of every chunk
        written (the caller's progress display).
        """
        self.check_url(url)
        part = dest + ".part"
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        resumed_from = os.path.getsize(part) if os.path.exists(part) else 0
        last, reason = "", "download_failed"
        checked_total = False
        for attempt in range(self.max_retries + 1):
            have = os.path.getsize(part) if os.path.exists(part) else 0
            headers = {"Range": f"bytes={have}-"} if have else None
            resp, watch = self._send("GET", url, headers=headers, read_body=False)
            try:
                total: Optional[int]
                if resp.status_code == 416 and have:
                    total = _content_range_total(resp.headers.get("Content-Range"))
                    if total == have:
                        break  # the part file is already complete
                    os.remove(part)
                    continue
                if resp.status_code == 206 and have:
                    total = _content_range_total(resp.headers.get("Content-Range"))
                    mode = "ab"
                elif resp.status_code == 200:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isascii() and length.isdigit() else None
                    mode, have = "wb", 0
                else:
                    raise FetchError(f"http_{resp.status_code}", f"GET {url}")
                if total is not None and total > self.max_bytes:
                    raise FetchError("too_large", f"{url} is {total} bytes (cap {self.max_bytes})")
                if on_total is not None and not checked_total:
                    checked_total = True
                    on_total(total)
                watch.body_started(MinRate(self.min_rate, self.timeout, watch.clock()) if self.min_rate else None)
                self._write_body(resp, part, mode, url, watch, on_bytes)
            except DECODE_ERRORS as exc:
                raise FetchError("bad_encoding", f"{url}: the body does not decompress ({exc})") from None
            except (FetchError, *NETWORK_ERRORS) as exc:
                if isinstance(exc, FetchError) and exc.reason != "timeout":
                    raise
                last, reason = (watch.fired, "timeout") if watch.fired else (
                    f"{type(exc).__name__}: {exc}", "timeout" if is_timeout(exc) else "download_failed")
                log.info("download of %s interrupted (%s); resuming (attempt %d)", url, last, attempt + 1)
                time.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap))
                continue
            finally:
                watch.stop()
                resp.close()
            size = os.path.getsize(part)
            if total is not None and size != total:
                last, reason = f"got {size} of {total} bytes", "download_failed"
                continue
            break
        else:
            raise FetchError(reason, f"{url}: {last} after {self.max_retries + 1} attempts")
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        size = os.path.getsize(part)
        os.replace(part, dest)
        return Download(dest, size, digest.hexdigest(), resumed_from)

    def _write_body(self, resp: requests.Response, part: str, mode: str, url: str, watch: Watch,
                    on_bytes: Optional[Callable[[int], None]]) -> None:
        """Append the (decompressed) body to `part`, counting the bytes written against `max_bytes`."""
        with open(part, mode) as f:
            while True:
                chunk = read_chunk(resp.raw, CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                watch.total += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
                if f.tell() > self.max_bytes:
                    raise FetchError("too_large", f"{url} exceeds {self.max_bytes} bytes")
            f.flush()
            os.fsync(f.fileno())
        if watch.fired:  # the connection was cut: a body without Content-Length merely looked complete
            raise watch.error()


def _content_range_total(value: Optional[str]) -> Optional[int]:
    """The complete length from `bytes 0-99/1234` or `bytes */1234`."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None
