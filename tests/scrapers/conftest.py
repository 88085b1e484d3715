"""A fake LibriVox on 127.0.0.1: API, book pages, a JS search page, generated MP3s and failure modes.

Served by a threaded stdlib http.server. API bodies for `?id=N` come from the saved real responses
in /work/shared/data/librivox_api when that folder exists; the generated catalogue below (same
shapes: `books` as an object keyed by index or as a list) serves paging and the end-to-end runs.
"""
from __future__ import annotations

import collections
import html
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from pipelines.audio import find_ffmpeg

# Set LIBRIVOX_API_DIR to another (or a missing) folder to run without the saved responses.
REAL_API_DIR = Path(os.environ.get("LIBRIVOX_API_DIR", "/work/shared/data/librivox_api"))
DB_ERROR_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<title>Database Error</title>
</head>
<body>
<div id="container">
<h1>A Database Error Occurred</h1>
<p>Unable to connect to your database server using the provided settings.</p><p>Filename: core/Loader.php</p>
</div>
</body>
</html>
"""
NOT_FOUND = '{"error":"Audiobooks could not be found"}'
ROBOTS = "User-agent: *\nDisallow: /private/\n"

# book id -> (title, project type, [(section number, [(reader id, name)], audio name or None, seconds)])
# Audio names starting with a failure mode trigger it: flaky429-, flaky500-, drop-, slow-.
BOOKS: Dict[str, Dict] = {
    "101": {"title": "Solo Book", "type": "solo", "genre": "Poetry", "sections": [
        (1, [("501", "Alice Reader")], "a1", 3), (2, [("501", "Alice Reader")], "flaky429-a2", 3),
        (3, [("501", "Alice Reader")], "flaky500-a3", 3)]},
    "102": {"title": "Group Book", "type": "group", "genre": "Short Stories", "sections": [
        (1, [("502", "Bob Reader")], "b1", 3), (2, [("502", "Bob Reader"), ("503", "Carol Reader")], "bc2", 3),
        (3, [("503", "Carol Reader")], "c3", 3), (4, [("503", "Carol Reader")], None, 3),
        (5, [("abc", "Weird Reader")], "w5", 3)]},
    "103": {"title": "Broken Page", "type": "solo", "genre": "Poetry", "sections": [
        (1, [("505", "Eve Reader")], "e1", 3)]},
    "104": {"title": "Second Solo Book", "type": "solo", "genre": "Poetry", "sections": [
        (1, [("501", "Alice Reader")], "drop-a4", 3), (2, [("501", "Alice Reader")], "a5", 3)]},
    "105": {"title": "Slow Book", "type": "solo", "genre": "Poetry", "sections": [
        (1, [("504", "Dave Reader")], "slow-d1", 12)]},
}
TONES = {"501": 220.0, "502": 330.0, "503": 440.0, "504": 550.0, "505": 660.0, "abc": 770.0}


def make_mp3(path: Path, freq: float, seconds: float) -> None:
    """A 64 kb/s mono MP3 of sine bursts with pauses (1.2 s tone, 0.6 s pause, ...)."""
    expr = f"sin(2*PI*{freq}*t)*0.4*lt(mod(t\\,1.8)\\,1.2)"
    subprocess.run([find_ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"aevalsrc={expr}:s=22050:d={seconds}", "-ac", "1", "-b:a", "64k", str(path)], check=True)


def api_book(bid: str, base: str) -> Dict:
    b = BOOKS[bid]
    sections = []
    for num, readers, audio, secs in b["sections"]:
        sections.append({
            "id": str(1000 * int(bid) + num), "section_number": str(num), "title": f"Chapter {num}",
            "listen_url": None if audio is None else f"https://librivox.org/uploads/x/{audio}_128kb.mp3",
            "language": "English", "playtime": str(secs), "file_name": None if audio is None else f"{audio}_128kb.mp3",
            "readers": [{"reader_id": r, "display_name": n} for r, n in readers]})
    return {"id": bid, "title": b["title"], "description": "<p>generated</p>", "language": "English",
            "num_sections": str(len(sections)), "url_librivox": f"https://librivox.org/book-{bid}/",
            "url_zip_file": f"http://www.archive.org/download/book{bid}/book{bid}_64kb_mp3.zip",
            "totaltime": "0:00:09", "totaltimesecs": 9, "authors": [],
            "genres": [{"id": "1", "name": b["genre"]}], "translators": [], "sections": sections}


def books_body(books: List[Dict], as_list: bool) -> str:
    """Both real shapes: a list, or an object keyed by index (PHP-style `\\/` escapes)."""
    payload = books if as_list else {str(i): b for i, b in enumerate(books)}
    return json.dumps({"books": payload}).replace("/", "\\/")


def book_page(bid: str, base: str) -> str:
    b = BOOKS[bid]
    if bid == "103":
        return "<html><body><h1>Broken Page</h1><p>No chapters here.</p></body></html>"
    rows = []
    for num, readers, audio, secs in b["sections"]:
        play = f'<a class="play-btn" href="{base}/audio/{audio}_64kb.mp3"></a>' if audio else ""
        name = (f'<a class="chapter-name" href="{base}/audio/{audio}_128kb.mp3">Chapter {num}</a>' if audio
                else f"Chapter {num}")
        who = ", ".join(f'<a href="https://librivox.org/reader/{r}">{html.escape(n)}</a>' for r, n in readers)
        rows.append(f"<tr><td>{play} {num:02d}</td><td>{name}</td><td>{who}</td><td>00:00:{secs:02d}</td></tr>")
    return f"""<html><head><title>{b['title']}</title></head><body>
<div class="content-wrap"><h1>{html.escape(b['title'])}</h1>
<table class="chapter-download"><thead><tr><th>Section</th><th>Chapter</th><th>Reader</th><th>Time</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table></div>
<div class="sidebar">
<dl class="listen-download"><dt>Download</dt><dd><a href="http://www.archive.org/download/book{bid}/book{bid}_64kb_mp3.zip">Zip file</a></dd>
<dd><a href="https://librivox.org/rss/{bid}">RSS</a></dd></dl>
<dl class="product-details"><dt>Running Time:</dt><dd>00:00:09</dd><dt>Read by:</dt><dd>Various</dd></dl>
</div></body></html>"""


SEARCH_PAGE = """<!DOCTYPE html><html><head><title>Search</title></head><body>
<form id="advanced-search-form">
<select name="project_type"><option value="either">Either</option><option value="solo">Solo</option>
<option value="group">Group</option></select>
<select name="recorded_language"><option value="">Any</option><option value="English">English</option>
<option value="German">German</option></select>
<select name="genre_id"><option value="">Any</option><option value="1">Poetry</option></select>
<select name="sort_order"><option value="catalog_date">Date</option><option value="alpha">Alpha</option></select>
<button type="submit">Search</button>
</form>
<ul class="browse-list" id="results"></ul>
<script>
document.getElementById('advanced-search-form').addEventListener('submit', function (ev) {
  ev.preventDefault();
  var params = new URLSearchParams(new FormData(ev.target)).toString();
  setTimeout(function () {
    fetch('/search_results?' + params).then(function (r) { return r.text(); }).then(function (t) {
      document.getElementById('results').innerHTML = t;
    });
  }, 1000);
});
</script></body></html>"""


def search_results(params: Dict[str, str]) -> str:
    items = []
    for bid, b in BOOKS.items():
        if params.get("project_type") in ("solo", "group") and b["type"] != params["project_type"]:
            continue
        if params.get("recorded_language") not in (None, "", "English"):
            continue
        items.append(f"""<li class="catalog-result"><a class="result-thumb" href="https://librivox.org/book-{bid}/"></a>
<div class="result-data"><h3><a href="https://librivox.org/book-{bid}/">{html.escape(b['title'])}</a></h3>
<p class="book-meta">Complete | {b['type'].title()} | English</p></div></li>""")
    return "".join(items) or '<p class="no-results">No results</p>'


class FakeLibriVox:
    def __init__(self, audio_dir: Path):
        self.audio_dir = audio_dir
        self.requests: List[Dict] = []
        self.hits: collections.Counter = collections.Counter()
        self.slow_delay = 0.08
        self.use_real = REAL_API_DIR.is_dir()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.requests.clear()
        self.hits.clear()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, path_part: str) -> int:
        return sum(1 for r in self.requests if path_part in r["path"])

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
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

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(parts.query))
                server.requests.append({"path": self.path, "ua": self.headers.get("User-Agent", ""),
                                        "range": self.headers.get("Range"), "t": time.monotonic()})
                server.hits[parts.path] += 1
                n = server.hits[parts.path]
                path = parts.path
                if path == "/robots.txt":
                    return self._send(200, ROBOTS, "text/plain")
                if path.rstrip("/") == "/api/feed/audiobooks":
                    return self._api(q)
                if path.startswith("/book-"):
                    bid = path.strip("/").split("-", 1)[1]
                    if bid in BOOKS:
                        return self._send(200, book_page(bid, server.base))
                    return self._send(404, "not found")
                if path == "/search":
                    return self._send(200, SEARCH_PAGE)
                if path == "/search_results":
                    return self._send(200, search_results(q))
                if path == "/redirect-out":
                    self.send_response(302)
                    self.send_header("Location", "http://evil.example/x.mp3")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path == "/always500":
                    return self._send(500, "boom")
                if path.startswith("/audio/") or path.startswith("/private/"):
                    return self._audio(path, n)
                return self._send(404, "not found")

            def _api(self, q):
                if q.get("format") != "json":
                    return self._send(400, "format=json please")
                if "id" in q:
                    bid = q["id"]
                    if bid in BOOKS:
                        return self._send(200, books_body([api_book(bid, server.base)], as_list=False),
                                          "application/json")
                    if bid == "9002":
                        return self._send(200, DB_ERROR_PAGE)
                    real = REAL_API_DIR / f"audiobook_id_{bid}.json"
                    if server.use_real and real.exists():
                        return self._send(200, real.read_bytes(), "application/json")
                    return self._send(200, NOT_FOUND, "application/json")
                if q.get("genre") == "Database":
                    return self._send(200, DB_ERROR_PAGE)
                books = [api_book(b, server.base) for b in BOOKS]
                if q.get("genre"):
                    books = [b for b in books if b["genres"][0]["name"] == q["genre"]]
                limit, offset = int(q.get("limit", 50)), int(q.get("offset", 0))
                page = books[offset:offset + limit]
                if not page:
                    return self._send(200, NOT_FOUND, "application/json")
                return self._send(200, books_body(page, as_list=(offset // limit) % 2 == 1), "application/json")

            def _audio(self, path: str, n: int):
                name = path.rsplit("/", 1)[1]
                f = server.audio_dir / name
                if not f.exists():
                    return self._send(404, "no such file")
                data = f.read_bytes()
                if name.startswith("flaky429-") and n == 1:
                    return self._send(429, "slow down", headers={"Retry-After": "1"})
                if name.startswith("flaky500-") and n == 1:
                    return self._send(500, "oops")
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        return self._send(416, "", headers={"Content-Range": f"bytes */{len(data)}"})
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if name.startswith("drop-") and n == 1:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if name.startswith("slow-"):
                    for i in range(0, len(body), 8192):
                        self.wfile.write(body[i:i + 8192])
                        self.wfile.flush()
                        time.sleep(server.slow_delay)
                    return
                self.wfile.write(body)

        return Handler


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fake_audio")
    for bid, b in BOOKS.items():
        for num, readers, audio, secs in b["sections"]:
            if audio is None:
                continue
            freq = TONES[readers[0][0]] + 20 * num
            make_mp3(d / f"{audio}_64kb.mp3", freq, secs)
            (d / f"{audio}_128kb.mp3").write_bytes((d / f"{audio}_64kb.mp3").read_bytes())
    (d.parent / "private").mkdir(exist_ok=True)
    return d


@pytest.fixture(scope="session")
def _server(audio_dir):
    srv = FakeLibriVox(audio_dir)
    yield srv
    srv.close()


@pytest.fixture()
def server(_server) -> FakeLibriVox:
    _server.reset()
    _server.slow_delay = 0.08
    return _server


def real_api_files() -> Optional[List[Path]]:
    return sorted(REAL_API_DIR.glob("audiobook_id_*.json")) if REAL_API_DIR.is_dir() else None
