"""LibriVox API client and parsing: `/api/feed/audiobooks/?format=json`.

Real bodies hold `books` as a list or as an object keyed by index; failures come back as
`{"error": "Audiobooks could not be found"}` (also the end of paging) or as an HTML "Database
Error" page. The "could not be found" body comes with HTTP 404 (the catalogue's REST controller,
LibriVox/librivox-catalog application/controllers/api/Feed.php), so API reads accept that status
(`ANSWER_STATUSES`). Parsing is plain functions on text, so it is tested without a network.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import urllib.parse
from typing import Dict, Iterator, List, Optional, Sequence

from scrapers.jsonl import json_depth

API_PATH = "/api/feed/audiobooks/"
DEFAULT_LIMIT = 50
ANSWER_STATUSES = (404,)  # besides 2xx: statuses whose body is still an API answer to parse


class ApiError(Exception):
    """The API answered with something other than books; `reason` says what."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class NotFound(ApiError):
    def __init__(self, message: str):
        super().__init__("not_found", message)


@dataclasses.dataclass(frozen=True)
class Reader:
    reader_id: str
    name: str


@dataclasses.dataclass(frozen=True)
class Section:
    section_id: str
    number: Optional[int]
    title: str
    playtime_s: Optional[float]
    listen_url: Optional[str]
    file_name: Optional[str]
    readers: tuple


@dataclasses.dataclass(frozen=True)
class Book:
    book_id: str
    title: str
    language: str
    url_librivox: Optional[str]
    url_zip_file: Optional[str]
    totaltime_s: Optional[float]
    genres: tuple
    sections: tuple


def api_url(base_url: str, **params) -> str:
    """The API URL on `base_url` with `format=json` and the given non-empty parameters."""
    query = [("format", "json")]
    for key, value in params.items():
        if value is None or value == "" or value is False:
            continue
        if isinstance(value, (list, tuple)):
            query += [(f"{key}[]", str(v)) for v in value]
        else:
            query.append((key, "1" if value is True else str(value)))
    return base_url.rstrip("/") + API_PATH + "?" + urllib.parse.urlencode(query)


def _str(value) -> str:
    return "" if value is None else str(value).strip()


def _int_or_none(value) -> Optional[int]:
    """A plain non-negative integer of at most 9 ASCII digits (a section number), else None."""
    text = _str(value)
    return int(text) if re.fullmatch(r"[0-9]{1,9}", text) else None


def _float_or_none(value) -> Optional[float]:
    try:
        number = float(_str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) else None  # "nan", "inf", 1e999: no number of seconds


def _dicts(value) -> List[Dict]:
    """The objects of a JSON list (anything else, or a non-object item, counts as absent)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _url_or_none(value) -> Optional[str]:
    text = _str(value)
    return text or None  # the API has both null and "" for "no audio"


def parse_section(data: Dict) -> Section:
    readers = tuple(Reader(_str(r.get("reader_id")), _str(r.get("display_name"))) for r in _dicts(data.get("readers")))
    return Section(
        section_id=_str(data.get("id")), number=_int_or_none(data.get("section_number")),
        title=_str(data.get("title")), playtime_s=_float_or_none(data.get("playtime")),
        listen_url=_url_or_none(data.get("listen_url")), file_name=_url_or_none(data.get("file_name")),
        readers=readers)


def parse_book(data: Dict) -> Book:
    sections = tuple(parse_section(s) for s in _dicts(data.get("sections")))
    genres = tuple(_str(g.get("name")) for g in _dicts(data.get("genres")))
    return Book(
        book_id=_str(data.get("id")), title=_str(data.get("title")), language=_str(data.get("language")),
        url_librivox=_url_or_none(data.get("url_librivox")), url_zip_file=_url_or_none(data.get("url_zip_file")),
        totaltime_s=_float_or_none(data.get("totaltimesecs")), genres=genres, sections=sections)


MAX_JSON_DEPTH = 64  # real answers nest 4 levels (books > sections > readers > fields)


def load_json(text: str, max_depth: int = MAX_JSON_DEPTH):
    """An API body as JSON; ApiError('invalid_json') for anything that is not sane JSON: malformed, nested
    deeper than `max_depth` (a `[[[[...]]]]` bomb is a RecursionError inside the decoder), or an integer
    too long to convert."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError("invalid_json", f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ApiError("invalid_json", "JSON nested too deeply to parse") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise ApiError("invalid_json", f"not usable JSON ({str(exc)[:100]})") from None
    if json_depth(data) > max_depth:
        raise ApiError("invalid_json", f"JSON nested deeper than {max_depth} levels")
    return data


def parse_raw_books(text: str) -> List[Dict]:
    """The book objects of an API body, unparsed, in the server's order; NotFound for the "could not be
    found" error, ApiError for the rest."""
    stripped = text.lstrip()
    if stripped[:1] == "<":
        title = re.search(r"<title>(.*?)</title>", stripped, re.S | re.I)
        detail = re.search(r"<p>(.*?)</p>", stripped, re.S)
        what = (title.group(1).strip() if title else "HTML page")
        raise ApiError("html_error_page", what + (f" ({re.sub('<[^>]+>', '', detail.group(1))})" if detail else ""))
    data = load_json(text)
    if not isinstance(data, dict):
        raise ApiError("invalid_json", f"a JSON {type(data).__name__}, not an object")
    if "error" in data:
        message = _str(data["error"])
        if "could not be found" in message.lower():
            raise NotFound(message)
        raise ApiError("api_error", message)
    books = data.get("books")
    if isinstance(books, dict):  # keyed by index ("0", "1", ...): keep the server's order
        def index(k: str) -> tuple:
            return (0, int(k), k) if re.fullmatch(r"[0-9]{1,18}", k) else (1, 0, k)

        items = [books[k] for k in sorted(books, key=index)]
    elif isinstance(books, list):
        items = books
    else:
        raise ApiError("invalid_json", "no 'books' list or object")
    return [b for b in items if isinstance(b, dict)]


def parse_response(text: str) -> List[Book]:
    """Books from an API body; NotFound for the "could not be found" error, ApiError for the rest."""
    return [parse_book(b) for b in parse_raw_books(text)]


def fetch_page(get_text, base_url: str, limit: int, offset: int, **filters) -> Optional[List[Dict]]:
    """The raw books of one API page (extended), or None past the end ("could not be found")."""
    try:
        return parse_raw_books(get_text(api_url(base_url, extended=1, limit=limit, offset=offset, **filters)))
    except NotFound:
        return None


def iter_pages(get_text, base_url: str, limit: int = DEFAULT_LIMIT, offset: int = 0, max_pages: Optional[int] = None,
               **filters) -> Iterator[tuple]:
    """(offset, books) per API page until the "could not be found" end or a short page."""
    pages = 0
    while max_pages is None or pages < max_pages:
        raw = fetch_page(get_text, base_url, limit, offset, **filters)
        if raw is None:
            return
        yield offset, [parse_book(b) for b in raw]
        pages += 1
        if len(raw) < limit:
            return
        offset += limit


def fetch_book(get_text, base_url: str, book_id: str) -> Book:
    books = parse_response(get_text(api_url(base_url, id=book_id, extended=1)))
    for b in books:
        if b.book_id == str(book_id):
            return b
    raise NotFound(f"book {book_id} not in the response")


def filter_books(books: Sequence[Book], language: Optional[str] = None, genre: Optional[str] = None) -> List[Book]:
    """Client-side filters (the API has no language parameter; genre is also checked here)."""
    out = []
    for b in books:
        if language and b.language.lower() != language.lower():
            continue
        if genre and genre.lower() not in {g.lower() for g in b.genres}:
            continue
        out.append(b)
    return out
