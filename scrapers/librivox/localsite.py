"""A local LibriVox on 127.0.0.1 for tests and the demo: API, book pages, the JS search, audio, failure modes.

    python -m scrapers.librivox.localsite --port 0 --dir /tmp/lv-audio    # prints its base URL, serves until killed
    with LocalLibriVox() as site: ... site.base ...                       # from Python (a thread)

A threaded stdlib http.server. API bodies for `?id=N` of books not in the small generated catalogue
come from saved real responses (`audiobook_id_N.json`) when a folder of them exists: `--api-dir`,
$LIBRIVOX_API_DIR, or librivox_api/ of the real-data folder (pipelines.paths.real_data_dir); without one, only the
generated catalogue is served (same shapes: `books` as an object keyed by index or as a list; the
"could not be found" body with HTTP 404, as the real API's REST controller sends it).

The search page follows LibriVox's catalogue markup (LibriVox/librivox-catalog: views/catalog/search.php,
partials/advanced_search.php, partials/footer.php, item_blades/title_blade.php): `/search/advanced_search`
redirects to `/search` with the advanced form shown; the form `#advanced_search_form` (selects
`#genre_id`, `#status`, `#project_type`, `#recorded_language` with language ids as values, `#sort_order`)
is sent by `#advanced_search_form_submit` as an XHR GET to `/advanced_search`, whose JSON `results`
(`li.catalog-result` blocks, or "No results found") and `pagination` (`a.page-number`) the script
inserts into `ul.browse-list` and `.page-number-nav` after a delay.

Audio is generated here with ffmpeg (argument lists only): tiny deterministic 64 kb/s MP3s of sine bursts.
File names select failure modes: flaky429- (429 + Retry-After once), flaky500- (500 once), drop- (the
connection drops mid-file once), slow- (trickles); /always500 and /redirect-out; `?id=9002` and
`genre=Database` answer with the HTML "Database Error" page.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from pipelines import arguments
from pipelines.paths import real_data_dir
from scrapers.localserver import LocalServer, QuietHandler, make_tone

DEFAULT_API_DIR = Path(os.environ.get("LIBRIVOX_API_DIR") or Path(real_data_dir()) / "librivox_api")
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
RESULTS_PER_PAGE = 2  # the real catalogue shows CATALOG_RESULT_COUNT per page; small here so paging is exercised

# book id -> title, project type, genre, [(section number, [(reader id, name)], audio name or None, seconds)]
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
GENRE_IDS = {"Poetry": "6", "Short Stories": "11"}
LANGUAGE_IDS = {"English": "1", "French": "2", "German": "3", "Dutch": "4"}
COMMON_LANGUAGES = ("English", "French", "German")
# Not in any book: files whose header disagrees with their size, for the duration checks.
EXTRA_AUDIO = {"halfrate-x1": (3, 32, 6.0)}  # name -> (playtime the API would claim, kb/s, real seconds)
NOT_AUDIO = "notaudio-x2"  # 24,000 bytes of HTML served as an MP3: the size of 3 s at 64 kb/s


def make_mp3(path: Path, freq: float, seconds: float, kbps: int = 64) -> None:
    """A mono CBR MP3 of sine bursts with pauses (1.2 s tone, 0.6 s pause, ...), bit-exact between runs."""
    make_tone(path, freq, seconds, 22050, ["-b:a", f"{kbps}k", "-map_metadata", "-1", "-fflags", "+bitexact",
                                           "-flags:a", "+bitexact"])


def make_audio(audio_dir: Path) -> Path:
    """Every MP3 the site serves, in `audio_dir` (kept when already there)."""
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)

    def ensure(name: str, freq: float, seconds: float, kbps: int = 64) -> None:
        target = audio_dir / name
        if not target.exists():
            tmp = audio_dir / (name + ".tmp.mp3")
            make_mp3(tmp, freq, seconds, kbps)
            os.replace(tmp, target)

    for bid, b in BOOKS.items():
        for num, readers, audio, secs in b["sections"]:
            if audio is None:
                continue
            # a tone of its own for every chapter: two chapters never hold the same audio (the builder
            # keeps one copy of identical audio)
            ensure(f"{audio}_64kb.mp3", TONES[readers[0][0]] + 20 * num + 5 * (int(bid) - 100), secs)
            if not (audio_dir / f"{audio}_128kb.mp3").exists():  # same bytes: the 128 kb link is only parsed
                shutil.copyfile(audio_dir / f"{audio}_64kb.mp3", audio_dir / f"{audio}_128kb.mp3")
    for name, (_playtime, kbps, seconds) in EXTRA_AUDIO.items():
        ensure(f"{name}_64kb.mp3", 300.0, seconds, kbps)
    junk = (DB_ERROR_PAGE * 200).encode("utf-8")[:24000]
    (audio_dir / f"{NOT_AUDIO}_64kb.mp3").write_bytes(junk)
    return audio_dir


# -------------------------------------------------------------------------------------------------
# Bodies
# -------------------------------------------------------------------------------------------------
def api_book(bid: str, base: str = "") -> Dict:
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
            "genres": [{"id": GENRE_IDS[b["genre"]], "name": b["genre"]}], "translators": [], "sections": sections}


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


def _options(pairs: Sequence[tuple], selected: str = "") -> str:
    return "".join(f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>{html.escape(label)}</option>'
                   for v, label in pairs)


def search_page(show_advanced_form: bool, delay_ms: int = 1000) -> str:
    """`/search` as the catalogue renders it: the advanced form is hidden unless reached via /search/advanced_search."""
    languages = ([(LANGUAGE_IDS[n], n) for n in COMMON_LANGUAGES] + [("", " ------ ")]
                 + sorted(((i, n) for n, i in LANGUAGE_IDS.items()), key=lambda p: p[1]))
    genres = [("0", "")] + [(i, n) for n, i in GENRE_IDS.items()]
    return f"""<!DOCTYPE html><html><head><title>LibriVox</title></head><body>
<form role="search" id="searchform"><input type="text" id="q" name="q"/><input type="submit" id="searchsubmit" value="Search"/></form>
<div class="main-content advanced-search-form">
<div class="advanced-search-inner" style="display:none;">
<h2>Advanced Search</h2>
<form id="advanced_search_form" method="post">
<label for="title">Title: <input type="text" id="title" name="title" value=""/></label>
<label for="author">Author: <input type="text" id="author" name="author" value=""/></label>
<label for="reader">Reader: <input type="text" id="reader" name="reader" value=""/></label>
<label for="exact_match">Exact match: <input type="checkbox" id="exact_match" name="exact_match"/></label>
<label for="keywords">Keywords: <input type="text" name="keywords" value="" id="keywords"/></label>
<label for="genre_id">Category/Genre: <select name="genre_id" id="genre_id">{_options(genres, "0")}</select></label>
<label for="status">Status: <select name="status" id="status">{_options([("all", "All"), ("complete", "Complete"),
    ("in_progress", "In Progress"), ("open", "Open")], "all")}</select></label>
<label for="project_type">Solo/ Group: <select name="project_type" id="project_type">{_options([("either", "Either"),
    ("solo", "Solo"), ("group", "Group")], "either")}</select></label>
<label for="recorded_language">Language: <select id="recorded_language" name="recorded_language">{_options(languages, "")}</select></label>
<label for="sort_order">Sort by: <select name="sort_order" id="sort_order">{_options([("catalog_date", "Date Released"),
    ("alpha", "Alphabetical")], "catalog_date")}</select></label>
<button id="advanced_search_form_submit" class="btn btn-large btn-primary"><span class="submit_top_line">Search</span><br/></button>
<input type="hidden" name="search_page" id="search_page" value="1">
<input type="hidden" name="search_form" id="search_form" value="advanced">
</form>
</div>
<div class="browse browse-title"><ul class="browse-list"></ul><div class="page-number-nav"></div></div>
</div>
<script>
(function () {{
  var form = document.getElementById('advanced_search_form');
  var inner = document.querySelector('.advanced-search-inner');
  var list = document.querySelector('.browse-list');
  var nav = document.querySelector('.page-number-nav');
  if ({1 if show_advanced_form else 0}) {{ setTimeout(function () {{ inner.style.display = 'block'; }}, 300); }}
  function getAdvancedResults() {{
    list.innerHTML = '<div class="loading_img"><img src="/img/loading.gif"/></div>';
    nav.innerHTML = '';
    var params = new URLSearchParams(new FormData(form)).toString() + '&q=';
    setTimeout(function () {{
      fetch('/advanced_search?' + params, {{headers: {{'X-Requested-With': 'XMLHttpRequest'}}}})
        .then(function (r) {{ return r.json(); }})
        .then(function (o) {{
          list.innerHTML = '';
          if (o.status == 'SUCCESS') {{ list.innerHTML = o.results; nav.innerHTML = o.pagination; }}
        }});
    }}, {int(delay_ms)});
  }}
  document.getElementById('advanced_search_form_submit').addEventListener('click', function (e) {{
    e.preventDefault();
    document.getElementById('search_page').value = 1;
    inner.style.display = 'none';
    getAdvancedResults();
  }});
  document.addEventListener('click', function (e) {{
    var a = e.target.closest('.page-number');
    if (!a) return;
    e.preventDefault();
    document.getElementById('search_page').value = a.getAttribute('data-page_number');
    getAdvancedResults();
  }});
}})();
</script></body></html>"""


def _language_name(value: Optional[str]) -> Optional[str]:
    """The form sends a language id; tests may pass the name."""
    if not value:
        return None
    return next((n for n, i in LANGUAGE_IDS.items() if i == value), value)


def matching_books(params: Dict[str, str]) -> List[str]:
    """Book ids the advanced search returns for the form `params` (in book-id order, whatever sort_order says)."""
    out = []
    for bid, b in BOOKS.items():
        if params.get("project_type") in ("solo", "group") and b["type"] != params["project_type"]:
            continue
        if _language_name(params.get("recorded_language")) not in (None, "English"):
            continue
        if params.get("genre_id") not in (None, "", "0") and GENRE_IDS[b["genre"]] != params["genre_id"]:
            continue
        out.append(bid)
    return out


def result_item(bid: str) -> str:
    """One `li.catalog-result` as item_blades/title_blade.php renders it for an advanced search."""
    b = BOOKS[bid]
    url = f"https://librivox.org/book-{bid}/"
    return f"""<li class="catalog-result">
<div class="catalog-type"><span class="title-icon"></span>Title</div>
<a href="#" class="book-cover"><img src="/images/book-cover-default-65x65.gif" alt="book-cover-65x65" width="65" height="65"/></a>
<div class="result-data"><h3><a href="{url}">{html.escape(b['title'])}</a></h3>
<p class="book-author"> <a href="https://librivox.org/author/1">Some Author</a> </p>
<p class="book-meta"> Complete | {b['type'].title()} | English</p></div>
<div class="download-btn"><a href="http://www.archive.org/download/book{bid}/book{bid}_64kb_mp3.zip">Download</a><span>1MB</span></div>
</li>"""


def all_results(params: Dict[str, str]) -> str:
    """Every result block of a search, all pages joined (for parser tests and a browser-less discovery)."""
    return "".join(result_item(b) for b in matching_books(params))


def search_results(params: Dict[str, str]) -> str:
    """The `results` HTML of one page of the advanced search ("No results found" when empty)."""
    ids = matching_books(params)
    page = max(1, int(params.get("search_page") or 1))
    chunk = ids[(page - 1) * RESULTS_PER_PAGE: page * RESULTS_PER_PAGE]
    return "".join(result_item(b) for b in chunk) or "No results found"


def pagination(current: int, page_count: int) -> str:
    """Catalog_controller::_format_pagination: first, numbered pages, last; all `a.page-number`."""
    if page_count <= 1:
        return ""
    link = '<a class="page-number{cls}" data-page_number="{n}" href="#" data-call_function="get_advanced_results">{t}</a>'
    parts = [link.format(cls=" first", n=1, t="&laquo;")]
    parts += [link.format(cls=" active" if n == current else "", n=n, t=n) for n in range(1, page_count + 1)]
    parts.append(link.format(cls=" last", n=page_count, t="&raquo;"))
    return "".join(parts)


def advanced_search_json(params: Dict[str, str]) -> str:
    n = len(matching_books(params))
    pages = -(-n // RESULTS_PER_PAGE)
    page = max(1, int(params.get("search_page") or 1))
    return json.dumps({"status": "SUCCESS", "results": search_results(params),
                       "pagination": pagination(page, pages), "search_page": page})


# -------------------------------------------------------------------------------------------------
# Server
# -------------------------------------------------------------------------------------------------
class LocalLibriVox(LocalServer):
    """The site on 127.0.0.1 in a background thread; `base` is its URL. Records every request."""

    def __init__(self, audio_dir: Optional[Path] = None, port: int = 0, api_dir: Optional[Path] = DEFAULT_API_DIR,
                 slow_delay: float = 0.08, search_delay_ms: int = 1000):
        self._tmp = None
        if audio_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="librivox-localsite-")
            audio_dir = Path(self._tmp)
        self.audio_dir = make_audio(Path(audio_dir))
        self.api_dir = Path(api_dir) if api_dir else None
        self.use_real = bool(self.api_dir and self.api_dir.is_dir())
        self.slow_delay, self.search_delay_ms = slow_delay, search_delay_ms
        super().__init__(port)

    def close(self) -> None:
        super().close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def count(self, path_part: str) -> int:
        return sum(1 for r in self.requests if path_part in r["path"])

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
                n = server.record(self, parts.path)
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
                if path.rstrip("/") == "/search/advanced_search":  # the catalogue keeps this in its session
                    return self._send(302, "", headers={"Location": "/search",
                                                        "Set-Cookie": "lv_search=advanced_search; Path=/"})
                if path == "/search":
                    shown = "lv_search=advanced_search" in (self.headers.get("Cookie") or "")
                    return self._send(200, search_page(shown, server.search_delay_ms),
                                      headers={"Set-Cookie": "lv_search=; Path=/; Max-Age=0"})
                if path == "/advanced_search":
                    return self._send(200, advanced_search_json(q), "application/json;charset=utf-8")
                if path == "/redirect-out":
                    return self._send(302, "", headers={"Location": "http://evil.example/x.mp3"})
                if path == "/always500":
                    return self._send(500, "boom")
                if path.startswith("/audio/") or path.startswith("/private/"):
                    return self._audio(path, n)
                return self._send(404, "not found")

            def _api(self, q):
                if q.get("format") != "json":
                    return self._send(400, "format=json please")
                if q.get("id"):
                    bid = q["id"]
                    if bid in BOOKS:
                        return self._send(200, books_body([api_book(bid, server.base)], as_list=False),
                                          "application/json")
                    if bid == "9002":
                        return self._send(200, DB_ERROR_PAGE)
                    real = server.api_dir / f"audiobook_id_{bid}.json" if server.use_real else None
                    if real is not None and real.exists():
                        return self._send(200, real.read_bytes(), "application/json")
                    return self._send(404, NOT_FOUND, "application/json")
                if q.get("genre") == "Database":
                    return self._send(200, DB_ERROR_PAGE)
                books = [api_book(b, server.base) for b in BOOKS]
                if q.get("genre"):
                    books = [b for b in books if b["genres"][0]["name"] == q["genre"]]
                limit, offset = int(q.get("limit") or 50), int(q.get("offset") or 0)
                page = books[offset:offset + limit]
                if not page:
                    return self._send(404, NOT_FOUND, "application/json")
                return self._send(200, books_body(page, as_list=(offset // limit) % 2 == 1), "application/json")

            def _audio(self, path: str, n: int):
                name = path.rsplit("/", 1)[1]
                f = server.audio_dir / name
                if "/" in name or not name or not f.is_file():
                    return self._send(404, "no such file")
                data = f.read_bytes()
                if name.startswith("flaky429-") and n == 1:
                    return self._send(429, "slow down", headers={"Retry-After": "1"})
                if name.startswith("flaky500-") and n == 1:
                    return self._send(500, "oops")
                body = self._send_file_headers(data, "audio/mpeg")
                if body is None:
                    return
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


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m scrapers.librivox.localsite", __doc__)
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--dir", help="folder for the generated audio (default: a temporary folder, removed on exit)")
    p.add_argument("--api-dir", default=str(DEFAULT_API_DIR), help="saved API responses audiobook_id_N.json, if any")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = build_parser().parse_args(argv)
    site = LocalLibriVox(Path(a.dir) if a.dir else None, port=a.port, api_dir=Path(a.api_dir))
    print(site.base, flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        site.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
