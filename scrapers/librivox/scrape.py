"""The LibriVox scrape: discovery (network), the planning loop, downloads, the run and its summary.

Plan first (API pages or the JS search, then each book page; metadata only), then download in plan
order. The selection policy is in selection.py (pure functions: `chapters_of_book`, `Selector`,
`apply_min_seconds`, the duration checks); `make_plan` feeds it the books in discovery order. Each
downloaded chapter becomes a pipelines.manifest `ManifestRecord` line in OUT/manifest.jsonl. A rerun
re-plans the same way and skips ids already in OUT/manifest.jsonl, so an interrupted run finishes as if
never stopped.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import subprocess
import urllib.parse
from typing import Callable, ClassVar, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from pipelines import decode
from pipelines.manifest import ManifestError, ManifestRecord
from pipelines.progress import Progress
from pipelines.schema import safe_name
from scrapers import early_audit
from scrapers.http import DEFAULT_ALLOWED_HOSTS, FetchError, PoliteSession, host_allowed, host_of
from scrapers.jsonl import JsonlAppender, drop_resolved, read_jsonl
from scrapers.librivox import api, pages, paging
from scrapers.librivox.selection import (Chapter, Selector, apply_min_seconds, audio_relpath, book_key,
                                         chapters_of_book, duration_ok, expected_seconds, plain_id, seconds_agree)
from scrapers.output import Reject, ScrapeConfig, exclusive, inside, write_config

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://librivox.org"
SOURCE = "librivox"
LICENSE = "public-domain"
MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
# Download outcomes that mean "not the audio the API describes": rejections (stage "verify"), never retried.
VERIFY_REASONS = ("duration_mismatch", "not_audio")

# Language names as the API spells them (book["language"]); --language must be one. The 16 languages of the
# 2016 API captures are all here; the rest was not checked against LibriVox's language table (not found).
LANGUAGES = (
    "Afrikaans", "Ancient Greek", "Arabic", "Basque", "Bengali", "Bulgarian", "Catalan", "Chinese", "Church Slavonic",
    "Croatian", "Czech", "Danish", "Dutch", "English", "Esperanto", "Estonian", "Finnish", "French", "Frisian",
    "Galician", "German", "Greek", "Hebrew", "Hindi", "Hungarian", "Icelandic", "Indonesian", "Interlingua", "Irish",
    "Italian", "Japanese", "Korean", "Latin", "Latvian", "Lithuanian", "Middle English", "Multilingual", "Norwegian",
    "Old English", "Old Norse", "Persian", "Polish", "Portuguese", "Romanian", "Russian", "Sanskrit", "Scots",
    "Serbian", "Slovak", "Slovenian", "Spanish", "Swedish", "Tagalog", "Tamil", "Turkish", "Ukrainian", "Urdu",
    "Vietnamese", "Welsh", "Yiddish",
)
# Genre names as the API reports them (book["genres"][i]["name"]): every name in the 2016 API captures
# (librivox_api/ of the real-data folder, README Development) plus the current catalogue genre tree (its advanced-search genre menu,
# "Parent > Child" labels split into names). Old names stay: the API keeps them on older books.
GENRES = (
    "Action & Adventure", "Action & Adventure Fiction", "American Standard Version", "Ancient", "Animals",
    "Animals & Nature", "Anthologies", "Antiquity", "Art, Design & Architecture", "Arts",
    "Astronomy, Physics & Mechanics", "Atheism & Agnosticism", "Ballads", "Bibles", "Biography & Autobiography",
    "Business & Economics", "Chemistry", "Children's Fiction", "Children's Non-fiction", "Christian Fiction",
    "Christianity - Biographies", "Christianity - Commentary", "Christianity - Other", "Classics (Antiquity)",
    "Classics (Greek & Latin Antiquity)", "Comedy", "Contemporary", "Cooking", "Crafts & Hobbies",
    "Crime & Mystery Fiction", "Culture & Heritage", "Culture & Heritage Fiction", "Detective Fiction",
    "Douay-Rheims Version", "Drama", "Dramatic Readings", "Early Modern", "Earth Sciences", "Education",
    "Elegies & Odes", "Epics", "Epistolary Fiction", "Erotica", "Essays", "Essays & Short Works", "Exploration",
    "Family", "Family & Relationships", "Family Life", "Fantastic Fiction", "Fantasy Fiction",
    "Fictional Biographies & Memoirs", "Free Verse", "Games", "Gardening", "General", "General Fiction",
    "Gothic Fiction", "Health & Fitness", "Historical", "Historical Fiction", "History",
    "Horror & Supernatural Fiction", "House & Home", "Humor", "Humorous Fiction", "King James Version",
    "Language learning", "Law", "Letters", "Life Sciences", "Literary Collections", "Literary Criticism",
    "Literary Fiction", "Lyric", "Mathematics", "Medical", "Medieval", "Memoirs", "Middle Ages/Middle History",
    "Modern", "Modern (19th C)", "Modern (20th C)", "Multi-version (Weekly and Fortnightly poetry)", "Music",
    "Myths, Legends & Fairy Tales", "Narratives", "Nature", "Nature & Animal Fiction", "Nautical & Marine Fiction",
    "*Non-fiction", "Other religions", "Performing Arts", "Philosophy", "Plays", "Poetry", "Political Science",
    "Psychology", "Published 1800 -1900", "Published 1900 onward", "Published before 1800", "Reference", "Religion",
    "Religious Fiction", "Romance", "Sagas", "Satire", "School", "Science", "Science Fiction", "Self-Help",
    "Short non-fiction", "Short Stories", "Short works", "Single author", "Single Author Collections",
    "Social Science", "Social Science (Culture & Anthropology)", "Sonnets", "Sports & Recreation", "Sports Fiction",
    "Suspense, Espionage, Political & Thrillers", "Technology & Engineering", "Tragedy", "Transportation",
    "Travel & Geography", "Travel Fiction", "True Crime", "War & Military", "War & Military Fiction", "Westerns",
    "Weymouth New Testament", "World English Bible", "Writing & Linguistics", "Young's Literal Translation",
)


def canonical(name: Optional[str], known: Sequence[str]) -> Optional[str]:
    """The known spelling of `name` (case- and space-insensitive), or None."""
    if name is None:
        return None
    key = " ".join(name.split()).lower()
    for k in known:
        if k.lower() == key:
            return k
    return None


@dataclasses.dataclass
class Config(ScrapeConfig):
    # What makes an output folder "the same scrape"; other settings (caps, paging) may change between runs.
    IDENTITY_KEYS: ClassVar[Tuple[str, ...]] = ("base_url", "language", "genre", "since", "author", "title", "quality")

    out: str
    base_url: str = DEFAULT_BASE_URL
    language: Optional[str] = None
    genre: Optional[str] = None
    since: Optional[int] = None
    author: Optional[str] = None
    title: Optional[str] = None
    book_ids: Tuple[str, ...] = ()
    search: bool = False
    search_genre_id: Optional[int] = None
    sort_order: Optional[str] = None
    limit: int = api.DEFAULT_LIMIT
    offset: int = 0
    max_pages: Optional[int] = None
    quality: int = 64
    max_readers: Optional[int] = None
    max_books_per_reader: Optional[int] = None
    max_seconds_per_reader: Optional[float] = None
    min_seconds_per_reader: float = 0.0
    exclude_readers: Tuple[str, ...] = ()
    solo_books_only: bool = False
    dry_run: bool = False
    duration_tolerance: float = 0.15
    min_interval: float = 1.0
    max_retries: int = 5
    backoff_base: float = 1.0
    timeout: float = 30.0
    max_file_mb: float = 2048.0
    min_rate_kb: float = 1.0
    max_retry_after: float = 120.0
    max_page_mb: float = 50.0
    progress: bool = True
    audit_model: Optional[str] = None  # scrapers.early_audit
    audit_first: int = 3
    audit_max_failures: int = 2


def rebase_url(url: str, base_url: str) -> str:
    """Point a librivox.org URL at the `--base-url` mirror (a no-op for the real site)."""
    base = urllib.parse.urlsplit(base_url)
    parts = urllib.parse.urlsplit(url)
    if host_allowed(parts.hostname or "", ("librivox.org",)) and base.hostname != parts.hostname \
            and not host_allowed(base.hostname or "", ("librivox.org",)):
        return urllib.parse.urlunsplit((base.scheme, base.netloc, parts.path, parts.query, ""))
    return url


# -------------------------------------------------------------------------------------------------
# Planning (network)
# -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Plan:
    chapters: List[Chapter] = dataclasses.field(default_factory=list)
    rejects: List[Reject] = dataclasses.field(default_factory=list)
    failures: List[Reject] = dataclasses.field(default_factory=list)
    books_seen: int = 0
    solo_books: int = 0
    readers_found: Set[str] = dataclasses.field(default_factory=set)
    next_offset: Optional[int] = None
    paging: Dict = dataclasses.field(default_factory=dict)  # API paging progress (paging.iter_books)


def make_session(cfg: Config) -> PoliteSession:
    hosts = list(DEFAULT_ALLOWED_HOSTS)
    base_host = host_of(cfg.base_url)
    if base_host and not host_allowed(base_host, hosts):
        hosts.append(base_host)
    return PoliteSession(allowed_hosts=hosts, min_interval=cfg.min_interval, max_retries=cfg.max_retries,
                         backoff_base=cfg.backoff_base, timeout=cfg.timeout,
                         max_bytes=int(cfg.max_file_mb * 2 ** 20), min_rate=cfg.min_rate_kb * 1024,
                         max_retry_after=cfg.max_retry_after, max_body_bytes=int(cfg.max_page_mb * 2 ** 20))


def discover_books(cfg: Config, session: PoliteSession, plan: Plan,
                   search_fn: Optional[Callable[[], List[pages.SearchResult]]] = None
                   ) -> Iterable[Tuple[api.Book, Optional[pages.BookPage]]]:
    """Books in discovery order: explicit ids, the Selenium solo search, or API paging with filters (resumable:
    see paging.py)."""
    get = session.get_text

    def api_get(url: str) -> str:
        return session.get_text(url, accept=api.ANSWER_STATUSES)

    if cfg.book_ids:
        for bid in cfg.book_ids:
            try:
                yield api.fetch_book(api_get, cfg.base_url, bid), None
            except (api.ApiError, FetchError) as exc:
                plan.failures.append(Reject(f"librivox-book-{bid}", "api", exc.reason, exc.message))
        return
    if cfg.search:
        try:
            results = search_fn() if search_fn else search_catalogue(cfg, session)
        except FetchError as exc:
            plan.failures.append(Reject("librivox-search", "search", exc.reason, exc.message, cfg.base_url))
            return
        for res in results:
            url = rebase_url(res.url, cfg.base_url)
            try:
                page = pages.parse_book_page(get(url), url)
            except pages.PageError as exc:
                plan.rejects.append(Reject(f"librivox-page-{safe_name(res.title)}", "page", exc.reason, exc.message, url))
                continue
            except FetchError as exc:
                plan.failures.append(Reject(f"librivox-page-{safe_name(res.title)}", "page", exc.reason, exc.message, url))
                continue
            if page.book_id is None:
                plan.rejects.append(Reject(f"librivox-page-{safe_name(res.title)}", "page", "no_book_id",
                                           "no /rss/<id> link on the book page", url))
                continue
            try:
                book = api.fetch_book(api_get, cfg.base_url, page.book_id)
            except (api.ApiError, FetchError) as exc:
                plan.failures.append(Reject(book_key(page.book_id), "api", exc.reason, exc.message, url))
                continue
            yield book, page
        return
    filters = dict(since=cfg.since, author=cfg.author, title=cfg.title, genre=cfg.genre)
    page_log = paging.PageLog(cfg.out, write=not cfg.dry_run)
    books = paging.iter_books(page_log, api_get, cfg.base_url, cfg.limit, cfg.offset, cfg.max_pages, filters,
                              plan.paging)
    try:
        while True:
            try:
                book = next(books)
            except StopIteration:
                break
            except (api.ApiError, FetchError) as exc:
                offset = plan.paging["next_offset"]
                url = api.api_url(cfg.base_url, extended=1, limit=cfg.limit, offset=offset, **filters)
                plan.failures.append(Reject(f"librivox-api-offset-{offset}", "api", exc.reason, exc.message, url))
                break
            if api.filter_books([book], cfg.language, cfg.genre):
                yield book, None
    finally:
        plan.next_offset = plan.paging.get("next_offset")
        page_log.close()


def search_catalogue(cfg: Config, session: PoliteSession) -> List[pages.SearchResult]:
    """Run the advanced solo search in headless Chromium on the (allow-listed) base URL; FetchError (one line) when
    the page does not load within --timeout or the browser fails."""
    from selenium.common.exceptions import TimeoutException, WebDriverException

    from scrapers.browser import BrowserUnavailable, headless_chromium

    session.check_url(cfg.base_url.rstrip("/") + "/search/advanced_search")
    try:
        with headless_chromium(user_agent=session.user_agent, only_hosts=session.allowed_hosts,
                               page_load_timeout=cfg.timeout) as driver:
            page = pages.SearchPage(driver, cfg.base_url).open()
            return page.search(project_type="solo", language=cfg.language, genre_id=cfg.search_genre_id,
                               sort_order=cfg.sort_order, max_pages=cfg.max_pages)
    except TimeoutException:
        raise FetchError("timeout", f"the catalogue search on {cfg.base_url} did not answer in time") from None
    except WebDriverException as exc:
        raise FetchError("browser_error", (exc.msg or type(exc).__name__).strip().split("\n")[0][:200]) from None
    except BrowserUnavailable as exc:
        raise FetchError("browser_unavailable", str(exc)) from None


def make_plan(cfg: Config, session: PoliteSession,
              search_fn: Optional[Callable[[], List[pages.SearchResult]]] = None) -> Plan:
    plan = Plan()
    selector = Selector(cfg.max_readers, cfg.max_books_per_reader, cfg.max_seconds_per_reader, cfg.exclude_readers)
    chosen: List[Chapter] = []
    taken: Dict[str, str] = {}  # relative audio path -> the chapter id it belongs to
    for book, page in discover_books(cfg, session, plan, search_fn):
        plan.books_seen += 1
        if not plain_id(book.book_id):  # never a file name, never a request for its page
            plan.rejects += chapters_of_book(book, None)[1]
            continue
        candidates = {s.readers[0].reader_id for s in book.sections if len(s.readers) == 1}
        plan.readers_found |= {r for r in candidates if plain_id(r)}
        if candidates and all(selector.refusal(r, book.book_id) for r in candidates):
            reason = selector.refusal(sorted(candidates)[0], book.book_id)
            plan.rejects.append(Reject(book_key(book.book_id), "select", reason, "no reader of this book can be taken"))
            if selector.saturated():
                break
            continue
        if page is None:
            if not book.url_librivox:
                plan.rejects.append(Reject(book_key(book.book_id), "page", "no_book_page", "no url_librivox"))
                continue
            url = rebase_url(book.url_librivox, cfg.base_url)
            try:
                page = pages.parse_book_page(session.get_text(url), url)
            except pages.PageError as exc:
                plan.rejects.append(Reject(book_key(book.book_id), "page", exc.reason, exc.message, url))
                continue
            except FetchError as exc:
                plan.failures.append(Reject(book_key(book.book_id), "page", exc.reason, exc.message, url))
                continue
        kept, rejects, solo = chapters_of_book(book, page, cfg.quality)
        plan.rejects += rejects
        plan.solo_books += int(solo)
        if cfg.solo_books_only and not solo:
            plan.rejects += [Reject(c.id, "select", "not_solo_book", "book read by several readers", c.url) for c in kept]
            continue
        for ch in kept:
            bad = unrecordable(ch)
            if bad:
                plan.rejects.append(bad)
                continue
            rel = audio_relpath(ch)
            if rel in taken:  # the same chapter listed twice (a book on two API pages): never one file for two
                plan.rejects.append(Reject(ch.id, "select", "path_collision",
                                           f"{rel} is already the file of {taken[rel]}", ch.url))
                continue
            reason = selector.take(ch)
            if reason:
                plan.rejects.append(Reject(ch.id, "select", reason, f"reader {ch.reader_id}", ch.url))
            else:
                chosen.append(ch)
                taken[rel] = ch.id
    plan.chapters, more = apply_min_seconds(chosen, cfg.min_seconds_per_reader)
    plan.rejects += more
    return plan


# -------------------------------------------------------------------------------------------------
# Manifest records, downloads, the run, summary
# -------------------------------------------------------------------------------------------------
def record_for(ch: Chapter, rel: str, size: Optional[int] = None, sha256: Optional[str] = None) -> ManifestRecord:
    """The manifest record of a downloaded chapter (ManifestError when web data does not fit the contract)."""
    return ManifestRecord(
        id=ch.id, path=rel, speaker=f"{SOURCE}:{ch.reader_id}", speaker_name=ch.reader_name, recording=ch.id,
        group=book_key(ch.book_id), source=SOURCE, url=ch.url, license=LICENSE, language=ch.language,
        title=f"{ch.book_title} - {ch.section_title}" if ch.section_title else ch.book_title,
        duration_s=ch.playtime_s, bytes=size, sha256=sha256,
        extra=dict(book_id=ch.book_id, section_id=ch.section_id, section_number=ch.section_number,
                   reader_id=ch.reader_id, reader_name=ch.reader_name))


def unrecordable(ch: Chapter) -> Optional[Reject]:
    """A rejection (stage "manifest") when `ch` could not become a manifest record (say, an API language or
    book id with control characters, a negative playtime), else None: checked before it is downloaded."""
    try:
        record_for(ch, audio_relpath(ch))
    except ManifestError as exc:
        return Reject(ch.id, "manifest", exc.reason, exc.message, ch.url)
    return None


def check_header_duration(path: str, playtime_s: Optional[float], tolerance: float) -> float:
    """The file's duration from its headers (read in-process by FFmpeg's libraries, no decoding), checked
    against the playtime; FetchError('not_audio' | 'duration_mismatch') when it is not that audio."""
    try:
        info = decode.probe(path)
    except decode.AudioError as exc:
        raise FetchError("not_audio", exc.message) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise FetchError("probe_failed", str(exc)) from None
    seconds = info.declared_duration_s
    if seconds is None:
        raise FetchError("not_audio", f"no duration in the {info.codec} headers")
    if not seconds_agree(seconds, playtime_s, tolerance):
        raise FetchError("duration_mismatch", f"the file's headers say {seconds:.1f} s, the API says {playtime_s} s")
    return seconds


def download_chapter(ch: Chapter, out: str, session: PoliteSession, tolerance: float,
                     on_bytes: Optional[Callable[[int], None]] = None) -> Dict:
    """Download one chapter (resuming a partial file) and return its manifest line's JSON object
    (`ManifestRecord.to_json()`); FetchError on failure. `on_bytes` hears of the bytes as they arrive."""
    rel = audio_relpath(ch)
    dest = os.path.join(out, *rel.split("/"))
    if not inside(out, dest):
        raise FetchError("unsafe_path", rel)
    if os.path.exists(dest):  # renamed but not recorded: let Range confirm it against the server
        os.replace(dest, dest + ".part")

    def check_total(total: Optional[int]) -> None:
        if total is not None and not duration_ok(total, ch.playtime_s, ch.kbps, tolerance):
            raise FetchError("duration_mismatch", f"{total} bytes is {expected_seconds(total, ch.kbps):.1f} s at "
                                                  f"{ch.kbps} kb/s, the API says {ch.playtime_s} s")

    try:
        result = session.download(ch.url, dest, on_total=check_total, on_bytes=on_bytes)
        check_total(result.bytes)
        check_header_duration(dest, ch.playtime_s, tolerance)
    except FetchError as exc:
        if exc.reason in ("too_large", *VERIFY_REASONS):
            for p in (dest, dest + ".part"):
                if os.path.exists(p):
                    os.remove(p)
        raise
    return record_for(ch, rel, result.bytes, result.sha256).to_json()


def run(cfg: Config, search_fn: Optional[Callable[[], List[pages.SearchResult]]] = None,
        session: Optional[PoliteSession] = None, echo: Callable[[str], None] = print) -> Dict:
    """Plan, then download (or list, with dry_run); returns the summary. One run per output folder at a time:
    OutputBusy, before any request, while another run holds OUT/.lock (a dry run writes nothing, locks nothing)."""
    with contextlib.nullcontext() if cfg.dry_run else exclusive(cfg.out):
        return _run(cfg, search_fn, session, echo)


def _run(cfg: Config, search_fn: Optional[Callable[[], List[pages.SearchResult]]],
         session: Optional[PoliteSession], echo: Callable[[str], None]) -> Dict:
    session = session or make_session(cfg)
    if not cfg.dry_run:
        os.makedirs(cfg.out, exist_ok=True)
        write_config(cfg.out, cfg)
    plan = make_plan(cfg, session, search_fn)
    summary: Dict = {"readers_found": len(plan.readers_found), "books": plan.books_seen, "solo_books": plan.solo_books,
                     "readers_selected": len({c.reader_id for c in plan.chapters}),
                     "chapters_kept": len(plan.chapters),
                     "rejected": dict(sorted(collections.Counter(r.reason for r in plan.rejects).items())),
                     "failures": [r.to_json() for r in plan.failures], "next_offset": plan.next_offset}
    if plan.paging:
        summary["api_paging"] = {k: plan.paging.get(k) for k in ("pages_recorded", "pages_fetched", "finished")}
    if cfg.dry_run:
        total_s = 0.0
        for ch in plan.chapters:
            est = (ch.playtime_s or 0) * ch.kbps * 1000 / 8
            total_s += ch.playtime_s or 0
            echo(f"{ch.id}\tlibrivox:{ch.reader_id}\t{ch.playtime_s or 0:.0f} s\t~{est / 1e6:.2f} MB\t{ch.url}")
        summary["hours_planned"] = round(total_s / 3600, 4)
        summary["unreachable"] = session.unreachable()
        echo(summary_text(summary))
        return summary
    manifest = JsonlAppender(os.path.join(cfg.out, MANIFEST))
    # files that were not the audio the API describes: not fetched again by a rerun
    verified_bad = {r["id"] for r in read_jsonl(os.path.join(cfg.out, REJECTED)) if r.get("stage") == "verify"}
    rejected = JsonlAppender(os.path.join(cfg.out, REJECTED), key=lambda r: (r["id"], r["reason"]))
    recorded_paths = {r.get("path"): r.get("id") for r in read_jsonl(os.path.join(cfg.out, MANIFEST))}
    downloaded_s, done_before = 0.0, 0
    early = early_audit.make(cfg.out, cfg.audit_model, cfg.audit_first, cfg.audit_max_failures, cfg.dry_run)
    todo = sum(1 for ch in plan.chapters if ch.id not in manifest and ch.id not in verified_bad)
    bar = Progress("download", total=todo, unit="chapters", amount="bytes", enabled=cfg.progress)
    try:
        bar.__enter__()  # a bar on a terminal, else a line every 10 % or 30 s (pipelines.progress)
        for r in plan.rejects + plan.failures:
            rejected.append(r.to_json())
        for ch in plan.chapters:
            if ch.id in manifest or ch.id in verified_bad:
                done_before += 1
                continue
            try:  # k of n counts the chapters tried: downloaded, rejected or failed
                stop = early.stopped(f"librivox:{ch.reader_id}") if early else None
                if stop:
                    rejected.append(Reject(ch.id, "audit", early_audit.REASON, stop, ch.url).to_json())
                    summary["rejected"][early_audit.REASON] = summary["rejected"].get(early_audit.REASON, 0) + 1
                    continue
                owner = recorded_paths.get(audio_relpath(ch))
                if owner is not None and owner != ch.id:  # the file belongs to another manifest line: never share it
                    rej = Reject(ch.id, "download", "path_collision", f"{audio_relpath(ch)} is the file of {owner}",
                                 ch.url)
                    summary["failures"].append(rej.to_json())
                    rejected.append(rej.to_json())
                    continue
                try:
                    record = download_chapter(ch, cfg.out, session, cfg.duration_tolerance, bar.add_amount)
                except FetchError as exc:
                    if exc.reason in VERIFY_REASONS:
                        rejected.append(Reject(ch.id, "verify", exc.reason, exc.message, ch.url).to_json())
                        summary["rejected"][exc.reason] = summary["rejected"].get(exc.reason, 0) + 1
                        log.warning("%s rejected: %s", ch.id, exc)
                        continue
                    rej = Reject(ch.id, "download", exc.reason, exc.message, ch.url)
                    summary["failures"].append(rej.to_json())
                    rejected.append(rej.to_json())
                    log.warning("%s: %s", ch.id, exc)
                    continue
                manifest.append(record)
                downloaded_s += record.get("duration_s") or 0.0
                if early:
                    early.check(record["speaker"], record["id"], os.path.join(cfg.out, *record["path"].split("/")))
            finally:
                bar.advance(1)
    finally:
        bar.close()
        manifest.close()
        rejected.close()
        if early:
            early.close()
    records = read_jsonl(os.path.join(cfg.out, MANIFEST))
    # a download that failed in an earlier run and succeeded now is no longer a rejection
    drop_resolved(os.path.join(cfg.out, REJECTED), {r["id"] for r in records})
    summary.update({"skipped_already_done": done_before, "hours_downloaded": round(downloaded_s / 3600, 4),
                    "hours_in_manifest": round(sum(r.get("duration_s") or 0 for r in records) / 3600, 4),
                    "manifest_records": len(records)})
    for f in summary["failures"]:
        summary["rejected"][f["reason"]] = summary["rejected"].get(f["reason"], 0) + 1
    summary["unreachable"] = session.unreachable()
    write_config(cfg.out, cfg, {"last_summary": summary})
    echo(summary_text(summary))
    return summary


def summary_text(s: Dict) -> str:
    lines = [f"readers found: {s['readers_found']}  selected: {s['readers_selected']}",
             f"books: {s['books']} (solo: {s['solo_books']})",
             f"chapters kept: {s['chapters_kept']}"]
    if "hours_planned" in s:
        lines.append(f"hours planned (dry run): {s['hours_planned']:.3f}")
    else:
        lines.append(f"hours downloaded: {s['hours_downloaded']:.3f} (manifest: {s['hours_in_manifest']:.3f} h, "
                     f"{s['manifest_records']} records; {s['skipped_already_done']} already done)")
    lines.append("rejected: " + (", ".join(f"{k}={v}" for k, v in s["rejected"].items()) or "none"))
    lines.append(f"failures: {len(s['failures'])}")
    unreachable = s.get("unreachable") or {}
    lines += [f"could not reach {host}: {why}" for host, why in unreachable.items()]
    if s.get("next_offset") is not None:
        lines.append(f"API paging stopped before offset {s['next_offset']} ({paging.PAGES_FILE} records the pages "
                     "so far); " + ("check --base-url and the network, then " if unreachable else "")
                     + "run the same command again to continue")
    elif s.get("api_paging", {}).get("finished"):
        lines.append(f"API paging finished ({s['api_paging']['pages_recorded']} pages recorded)")
    return "\n".join(lines)
