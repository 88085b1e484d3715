"""What the local fake sites (scrapers/librivox/localsite.py, the tests' fake YouTube) share.

`LocalServer`: a threaded stdlib HTTP server on 127.0.0.1 in a background thread, a context manager,
that records every request; `QuietHandler`: the base of a fake site's request handler; `make_tone`:
deterministic speech-like audio generated with ffmpeg (argument lists only).
"""
from __future__ import annotations

import collections
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from pipelines.decode_ffmpeg import find_ffmpeg


def make_tone(path: Path, freq: float, seconds: float, sample_rate: int, codec_args: Sequence[str]) -> None:
    """Mono sine bursts of `freq` Hz with pauses (1.2 s tone, 0.6 s pause, ...) in `path`, encoded with `codec_args`."""
    expr = f"sin(2*PI*{freq}*t)*0.4*lt(mod(t\\,1.8)\\,1.2)"
    subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc={expr}:s={sample_rate}:d={seconds}", "-ac", "1", *codec_args, "file:" + str(path)],
                   check=True)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log, and `_send` for a whole body: the base of a fake site's handler."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body, ctype: str = "text/html; charset=utf-8", headers=None):
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_file_headers(self, data: bytes, ctype: str) -> Optional[bytes]:
        """Status and headers for a file, honouring `Range: bytes=N-` (206, or 416 past the end); the body to
        write, or None when the answer is already complete (416)."""
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0] or 0)
            if start >= len(data):
                self._send(416, "", headers={"Content-Range": f"bytes */{len(data)}"})
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return body


class LocalServer:
    """A fake site on 127.0.0.1 in a background thread; `base` is its URL. Records every request.

    Subclasses set their own state, then call `super().__init__(port)`, and return their handler class
    (a QuietHandler) from `_handler`; handlers call `server.record(self)` for each request.
    """

    def __init__(self, port: int = 0):
        self.requests: List[Dict] = []
        self.hits: collections.Counter = collections.Counter()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type:
        raise NotImplementedError

    def record(self, handler: BaseHTTPRequestHandler, path: str) -> int:
        """Log the request `handler` is answering; how many requests `path` has had so far, this one included."""
        self.requests.append({"path": handler.path, "ua": handler.headers.get("User-Agent", ""),
                              "range": handler.headers.get("Range"), "t": time.monotonic()})
        self.hits[path] += 1
        return self.hits[path]

    def reset(self) -> None:
        self.requests.clear()
        self.hits.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
