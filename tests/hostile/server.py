"""A hostile HTTP server on 127.0.0.1 for the scraper hostile-input tests: each test routes paths to behaviours.

    with HostileServer() as srv:
        srv.route("/api", drip(b'{"books": []}', interval=1.0))
        ... srv.base + "/api" ...

Behaviours are small factories returning `fn(handler, query)`: a body dripped one byte at a time (status
line, headers or body), a Retry-After, a gzip bomb, a body without end or with a lying Content-Length,
redirects, and plain answers. A dripping or endless answer stops when the client hangs up (or after
`max_s`), so no server thread outlives its test for long.
"""
from __future__ import annotations

import gzip
import io
import time
import urllib.parse
from typing import Callable, Dict, Optional

from scrapers.localserver import LocalServer, QuietHandler

Behaviour = Callable[[QuietHandler, Dict[str, str]], None]
HANGUP = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError)


class HostileServer(LocalServer):
    def __init__(self):
        self.routes: Dict[str, Behaviour] = {}
        super().__init__()
        self.httpd.handle_error = lambda request, client_address: None  # a client hanging up is expected here

    def route(self, path: str, behaviour: Behaviour) -> str:
        """Serve `path` with `behaviour`; the full URL."""
        self.routes[path] = behaviour
        return self.base + path

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if urllib.parse.urlsplit(r["path"]).path == path)

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                server.record(self, parts.path)
                fn = server.routes.get(parts.path)
                if fn is None:
                    fn = server.routes.get("*") or static(404, b"not found")
                try:
                    fn(self, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)))
                except HANGUP:
                    self.close_connection = True

            do_HEAD = do_GET

        return Handler


# -------------------------------------------------------------------------------------------------
# Behaviours
# -------------------------------------------------------------------------------------------------
def static(status: int, body, ctype: str = "text/html; charset=utf-8", headers: Optional[Dict] = None) -> Behaviour:
    def fn(h, q):
        h._send(status, body, ctype, headers)
    return fn


def serve_file(data: bytes, ctype: str = "audio/mpeg") -> Behaviour:
    """A file, honouring `Range: bytes=N-` as a real server does."""
    def fn(h, q):
        body = h._send_file_headers(data, ctype)
        if body is not None and h.command != "HEAD":
            h.wfile.write(body)
    return fn


def robots(text: str = "User-agent: *\nDisallow: /private/\n") -> Behaviour:
    return static(200, text, "text/plain")


def redirect(location: str, status: int = 302) -> Behaviour:
    return static(status, b"", headers={"Location": location})


def retry_after(value: str, status: int = 429) -> Behaviour:
    return static(status, b"slow down", "text/plain", {"Retry-After": value})


def drip(body: bytes, interval: float = 1.0, ctype: str = "application/json", content_length: bool = True,
         max_s: float = 120.0, status: int = 200, prefix: int = 0, headers: Optional[Dict] = None) -> Behaviour:
    """Headers at once, then the body one byte every `interval` seconds (the first `prefix` bytes at once)."""
    def fn(h, q):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        if content_length:
            h.send_header("Content-Length", str(len(body)))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(body[:prefix])
        h.wfile.flush()
        end = time.monotonic() + max_s
        for i in range(prefix, len(body)):
            if time.monotonic() > end:
                break
            time.sleep(interval)
            h.wfile.write(body[i:i + 1])
            h.wfile.flush()
    return fn


def paced(body: bytes, chunk: int, interval: float, ctype: str = "audio/mpeg") -> Behaviour:
    """A slow but steady body: `chunk` bytes every `interval` seconds (Content-Length given)."""
    def fn(h, q):
        h.send_response(200)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for i in range(0, len(body), chunk):
            h.wfile.write(body[i:i + chunk])
            h.wfile.flush()
            time.sleep(interval)
    return fn


def drip_headers(interval: float = 1.0, max_s: float = 120.0) -> Behaviour:
    """The status line and headers one byte every `interval` seconds (no answer is ever complete)."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Padding: " + b"x" * 4000 + b"\r\n\r\nok"

    def fn(h, q):
        h.close_connection = True
        end = time.monotonic() + max_s
        for i in range(len(head)):
            if time.monotonic() > end:
                break
            h.wfile.write(head[i:i + 1])
            h.wfile.flush()
            time.sleep(interval)
    return fn


def gzip_bomb(inflated_bytes: int, ctype: str = "application/json") -> Behaviour:
    """`inflated_bytes` of spaces as a gzip body (about 1000:1); Content-Length is the compressed size."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as g:
        block = b" " * (1 << 20)
        for _ in range(inflated_bytes >> 20):
            g.write(block)
        g.write(b" " * (inflated_bytes & ((1 << 20) - 1)))
    data = buf.getvalue()
    return static(200, data, ctype, {"Content-Encoding": "gzip"})


def endless(chunk: bytes = b"\0" * 65536, ctype: str = "application/octet-stream", content_length: Optional[int] = None,
            max_bytes: int = 4 * 2 ** 30, status: int = 200) -> Behaviour:
    """A body that does not end (until `max_bytes` or the client hangs up); `content_length` may lie."""
    def fn(h, q):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if content_length is not None:
            h.send_header("Content-Length", str(content_length))
        else:
            h.send_header("Connection", "close")
        h.close_connection = True
        h.end_headers()
        sent = 0
        while sent < max_bytes:
            h.wfile.write(chunk)
            sent += len(chunk)
    return fn


def nested_json(depth: int) -> bytes:
    return b'{"books": ' + b"[" * depth + b"]" * depth + b"}"
