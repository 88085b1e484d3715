"""YouTube pages as data: the embedded `ytInitialData` / `ytInitialPlayerResponse` JSON and the rendered DOM.

Renderers change shape often (videoRenderer, gridVideoRenderer, playlistVideoRenderer, richItemRenderer ->
content -> videoRenderer, lockupViewModel, ...), so listing items are found by a recursive walk over the
JSON, never by a fixed path. The DOM parser reads the items a browser appended while scrolling, which
are not in the page's original `ytInitialData`. Both read saved HTML, so they are tested without a browser.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import re
import urllib.parse
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from bs4 import BeautifulSoup

from scrapers.http import FetchError
from scrapers.jsonl import json_depth

# \Z, not $: `$` also matches before a trailing newline, and these ids become file and folder names.
VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{11}\Z")
CHANNEL_ID = re.compile(r"^UC[A-Za-z0-9_-]{22}\Z")
PLAYLIST_ID = re.compile(r"^[A-Za-z0-9_-]{2,64}\Z")
MAX_JSON_DEPTH = 256  # real pages nest about 30 levels
MAX_JSON_CANDIDATES = 10  # `ytInitialData = {` occurrences tried (one in a real page)
# What malformed page data raises in the accessors below (a list where an object belongs, a bad number, ...).
MALFORMED = (AttributeError, TypeError, KeyError, IndexError, ValueError)
# Hosts of the site itself; media comes from googlevideo.com.
YOUTUBE_HOSTS = ("youtube.com", "youtu.be")
MEDIA_HOSTS = ("googlevideo.com",)
VIDEO_RENDERERS = ("videoRenderer", "gridVideoRenderer", "playlistVideoRenderer", "compactVideoRenderer",
                   "lockupViewModel")
LISTING_RENDERERS = ("videoRenderer", "gridVideoRenderer", "playlistVideoRenderer", "lockupViewModel")
# Elements a browser renders for listing items, and the link to the video inside them.
DOM_ITEMS = ("ytd-rich-item-renderer", "ytd-video-renderer", "ytd-grid-video-renderer",
             "ytd-playlist-video-renderer")
DOM_TITLE_LINKS = "a#video-title-link, a#video-title"
_JSON_VAR = r"(?:var\s+|let\s+|const\s+|window\s*\[\s*[\"']|window\.|self\.)?{name}(?:[\"']\s*\])?\s*=\s*(?=\{{)"


class PageError(FetchError):
    """A page without the structure expected (`reason` names what is missing)."""


@dataclasses.dataclass(frozen=True)
class Video:
    """What a page says about one video; fields it does not show are None."""

    id: str
    title: Optional[str] = None
    duration_s: Optional[float] = None
    channel_id: Optional[str] = None
    channel: Optional[str] = None
    upload_date: Optional[str] = None  # YYYY-MM-DD
    license: Optional[str] = None  # as the watch page states it; None when the page has no License row
    live: bool = False

    def filled_from(self, other: "Video") -> "Video":
        """This video with its missing fields taken from `other` (same id)."""
        updates = {f.name: getattr(other, f.name) for f in dataclasses.fields(self)
                   if getattr(self, f.name) in (None, False) and getattr(other, f.name) not in (None, False)}
        return dataclasses.replace(self, **updates)


@dataclasses.dataclass(frozen=True)
class Listing:
    """A channel Videos tab, a playlist or search results: videos in page order."""

    url: str
    videos: Tuple[Video, ...]
    channel_id: Optional[str] = None
    channel: Optional[str] = None
    title: Optional[str] = None
    has_continuation: bool = False


@dataclasses.dataclass(frozen=True)
class Watch:
    """A watch page: the video, whether it plays (`playability` OK) and the stream URLs it carries."""

    video: Video
    playability: str
    reason: Optional[str]
    formats: Tuple[Dict, ...]


# -------------------------------------------------------------------------------------------------
# JSON helpers
# -------------------------------------------------------------------------------------------------
def extract_json_var(html: str, name: str) -> Optional[Dict]:
    """The object assigned to `name` in a <script> (`var ytInitialData = {...};`, `window["ytInitialData"] = ...`).
    PageError('invalid_page') when it nests deeper than MAX_JSON_DEPTH (a `{"a":[[[[...]]]]}` bomb)."""
    decoder = json.JSONDecoder()
    for i, m in enumerate(re.finditer(_JSON_VAR.format(name=re.escape(name)), html)):
        if i >= MAX_JSON_CANDIDATES:
            break
        try:
            obj, _ = decoder.raw_decode(html, m.end())
        except RecursionError:
            raise PageError("invalid_page", f"{name} is nested too deeply to parse") from None
        except ValueError:
            continue
        if isinstance(obj, dict):
            if json_depth(obj) > MAX_JSON_DEPTH:
                raise PageError("invalid_page", f"{name} nests deeper than {MAX_JSON_DEPTH} levels")
            return obj
    return None


def walk(obj, names: Iterable[str]) -> Iterator[Tuple[str, Dict]]:
    """Every (key, object) under `obj` whose key is one of `names`, depth first in document order.
    A match is not searched further (a video renderer holds no other videos). Iterative: no depth limit."""
    names = names if isinstance(names, frozenset) else frozenset(names)

    def children(node):
        return iter(node.items()) if isinstance(node, dict) else ((None, v) for v in node)

    if not isinstance(obj, (dict, list)):
        return
    stack = [children(obj)]
    while stack:
        for k, v in stack[-1]:
            if k is not None and k in names and isinstance(v, dict):
                yield k, v
            elif isinstance(v, (dict, list)):
                stack.append(children(v))
                break
        else:
            stack.pop()


def page_parser(fn):
    """A page parser whose malformed input is a PageError('malformed_page'), never another exception."""
    @functools.wraps(fn)
    def parse(html: str, url: str, *args, **kwargs):
        try:
            return fn(html, url, *args, **kwargs)
        except RecursionError:
            raise PageError("invalid_page", f"{url}: the page data is nested too deeply") from None
        except MALFORMED as exc:
            raise PageError("malformed_page", f"{url}: unexpected page data ({type(exc).__name__}: "
                                              f"{first_line(str(exc))})") from None
    return parse


def first_line(text: str, limit: int = 200) -> str:
    return (text.strip().splitlines() or [""])[0][:limit]


def string(value) -> Optional[str]:
    """`value` when page data holds a string there, else None."""
    return value if isinstance(value, str) else None


def whole_number(value, max_digits: int = 12) -> Optional[int]:
    """A non-negative whole number from page data (an int, or at most `max_digits` ASCII digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10 ** max_digits else None
    if isinstance(value, str) and re.fullmatch(f"[0-9]{{1,{max_digits}}}", value):
        return int(value)
    return None


def seconds(value) -> Optional[float]:
    """A duration in whole seconds from page data (at most 9 digits), else None."""
    n = whole_number(value, 9)
    return None if n is None else float(n)


def text_of(node) -> Optional[str]:
    """The text of a YouTube text object: simpleText, runs[].text, or a view model's `content`."""
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return None
    if isinstance(node.get("simpleText"), str):
        return node["simpleText"]
    if isinstance(node.get("runs"), list):
        return "".join(r.get("text", "") for r in node["runs"] if isinstance(r, dict)) or None
    if isinstance(node.get("content"), str):
        return node["content"]
    return None


def accessibility_label(node) -> Optional[str]:
    try:
        return node["accessibility"]["accessibilityData"]["label"]
    except (KeyError, TypeError):
        return None


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_duration(text: Optional[str]) -> Optional[float]:
    """'12:34', '1:02:03', '7 hours, 33 minutes, 13 seconds' or '45' to seconds; None when it is no duration."""
    if not text:
        return None
    text = text.strip()
    if re.fullmatch(r"[0-9]{1,9}(?::[0-9]{1,2}){0,2}", text):
        total = 0
        for part in text.split(":"):
            total = total * 60 + int(part)
        return float(total)
    found = re.findall(r"\b([0-9]{1,9})\s*(second|minute|hour|day)s?\b", text.lower())
    if found:
        return float(sum(int(n) * _UNITS[u] for n, u in found))
    return None


def _channel_from_runs(node) -> Tuple[Optional[str], Optional[str]]:
    """(channel id, name) from a byline text object whose run links to /channel/UC..."""
    for run in (node or {}).get("runs", []) if isinstance(node, dict) else []:
        browse = ((run.get("navigationEndpoint") or {}).get("browseEndpoint") or {})
        cid = browse.get("browseId")
        if isinstance(cid, str) and CHANNEL_ID.match(cid):
            return cid, run.get("text")
    return None, None


# -------------------------------------------------------------------------------------------------
# Listing pages
# -------------------------------------------------------------------------------------------------
def video_from_renderer(kind: str, r: Dict) -> Optional[Video]:
    """A Video from one renderer object, or None when it is no valid video (a playlist lockup, a bad id)."""
    if kind == "lockupViewModel":
        return _video_from_lockup(r)
    vid = r.get("videoId")
    if not isinstance(vid, str) or not VIDEO_ID.match(vid):
        return None
    title = text_of(r.get("title")) or text_of(r.get("headline"))
    duration = seconds(r.get("lengthSeconds"))
    if duration is None:
        duration = parse_duration(text_of(r.get("lengthText"))) or parse_duration(accessibility_label(r.get("lengthText")))
    live = False
    for _, overlay in walk(r.get("thumbnailOverlays", []), ("thumbnailOverlayTimeStatusRenderer",)):
        live = live or overlay.get("style") in ("LIVE", "UPCOMING")
        if duration is None:
            duration = parse_duration(text_of(overlay.get("text"))) or parse_duration(accessibility_label(overlay.get("text")))
    channel_id, channel = None, None
    for key in ("ownerText", "shortBylineText", "longBylineText"):
        channel_id, channel = _channel_from_runs(r.get(key))
        if channel_id:
            break
    return Video(vid, title, duration, channel_id, channel, live=live)


def _video_from_lockup(r: Dict) -> Optional[Video]:
    vid = r.get("contentId")
    if r.get("contentType", "LOCKUP_CONTENT_TYPE_VIDEO") != "LOCKUP_CONTENT_TYPE_VIDEO" \
            or not isinstance(vid, str) or not VIDEO_ID.match(vid):
        return None
    meta = (r.get("metadata") or {}).get("lockupMetadataViewModel") or {}
    title = text_of(meta.get("title"))
    duration = None
    for _, badge in walk(r.get("contentImage", {}), ("thumbnailBadgeViewModel",)):
        duration = duration or parse_duration(badge.get("text"))
    channel_id, channel = None, None
    for _, part in walk(meta.get("metadata", {}), ("text",)):
        for _, browse in walk(part.get("commandRuns", []), ("browseEndpoint",)):
            cid = browse.get("browseId")
            if isinstance(cid, str) and CHANNEL_ID.match(cid) and channel_id is None:
                channel_id, channel = cid, part.get("content")
    return Video(vid, title, duration, channel_id, channel)


@page_parser
def initial_data(html: str, url: str) -> Dict:
    data = extract_json_var(html, "ytInitialData")
    if data is None:
        raise PageError("no_ytInitialData", f"{url}: no ytInitialData JSON in the page (expected "
                                            "`var ytInitialData = {{...}}` in a <script>); not a YouTube page, or "
                                            "its layout changed")
    return data


@page_parser
def parse_listing(html: str, url: str) -> Listing:
    """The videos of a channel/playlist/search page from its ytInitialData; PageError without it."""
    data = initial_data(html, url)
    page_channel_id, page_channel, title = None, None, None
    for _, meta in walk(data, ("channelMetadataRenderer",)):
        cid = meta.get("externalId")
        if isinstance(cid, str) and CHANNEL_ID.match(cid):
            page_channel_id, page_channel = cid, meta.get("title")
        title = meta.get("title")
        break
    for _, meta in walk(data, ("playlistMetadataRenderer",)):
        title = title or meta.get("title")
        break
    videos: Dict[str, Video] = {}
    for kind, r in walk(data, LISTING_RENDERERS):
        try:
            v = video_from_renderer(kind, r)
        except MALFORMED:  # one item of an unexpected shape: skipped, the rest of the page is kept
            v = None
        if v is None:
            continue
        if page_channel_id and v.channel_id is None:  # a channel's own tab: its videos are its own
            v = dataclasses.replace(v, channel_id=page_channel_id, channel=page_channel)
        videos[v.id] = videos[v.id].filled_from(v) if v.id in videos else v
    more = any(True for _ in walk(data, ("continuationItemRenderer",)))
    return Listing(url, tuple(videos.values()), page_channel_id, page_channel, title, more)


def video_id_from_href(href: Optional[str]) -> Optional[str]:
    """The video id of `/watch?v=ID&...`, `https://youtu.be/ID`, `/shorts/ID` (any host), or None."""
    if not href:
        return None
    parts = urllib.parse.urlsplit(href)
    vid = None
    if parts.path.rstrip("/").endswith("/watch") or parts.path == "/watch":
        vid = (urllib.parse.parse_qs(parts.query).get("v") or [None])[0]
    elif (parts.hostname or "").lower() == "youtu.be":
        vid = parts.path.strip("/")
    elif re.match(r"^/(?:shorts|embed|live|v)/", parts.path):
        vid = parts.path.split("/")[2]
    return vid if vid and VIDEO_ID.match(vid) else None


def parse_dom_items(html: str) -> List[Video]:
    """Videos rendered in the DOM (what scrolling appended), in page order: id, title and, when shown,
    the duration overlay and a /channel/UC... link."""
    soup = BeautifulSoup(html, "html.parser")
    out: Dict[str, Video] = {}
    items = soup.select(", ".join(DOM_ITEMS))
    anchors = [(item, item.select_one(DOM_TITLE_LINKS)) for item in items]
    if not items:  # no item containers: take the title links themselves
        anchors = [(a.parent, a) for a in soup.select(DOM_TITLE_LINKS)]
    for item, a in anchors:
        if a is None:
            continue
        vid = video_id_from_href(a.get("href"))
        if vid is None or vid in out:
            continue
        title = (a.get("title") or a.get_text(" ", strip=True) or None)
        duration = None
        for el in item.select("ytd-thumbnail-overlay-time-status-renderer, badge-shape, .badge-shape-wiz__text"):
            duration = duration or parse_duration(el.get_text(" ", strip=True))
        channel_id, channel = None, None
        for link in item.select('a[href*="/channel/UC"]'):
            cid = link["href"].split("/channel/", 1)[1].split("/")[0].split("?")[0]
            if CHANNEL_ID.match(cid):
                channel_id, channel = cid, link.get_text(" ", strip=True) or None
                break
        out[vid] = Video(vid, title, duration, channel_id, channel)
    return list(out.values())


def merge_listing(listing: Listing, dom: List[Video], limit: Optional[int] = None) -> Listing:
    """Page order from the DOM (it holds every scrolled-in item), each item completed from ytInitialData."""
    data = {v.id: v for v in listing.videos}
    merged: Dict[str, Video] = {}
    for v in dom:
        v = data[v.id].filled_from(v) if v.id in data else v
        if listing.channel_id and v.channel_id is None:
            v = dataclasses.replace(v, channel_id=listing.channel_id, channel=listing.channel)
        merged[v.id] = v
    for v in listing.videos:
        merged.setdefault(v.id, v)
    videos = tuple(merged.values())
    return dataclasses.replace(listing, videos=videos[:limit] if limit else videos)


# -------------------------------------------------------------------------------------------------
# Watch pages
# -------------------------------------------------------------------------------------------------
def license_of(data: Optional[Dict]) -> Optional[str]:
    """The watch page's "License" metadata row (e.g. 'Creative Commons Attribution license (reuse allowed)'),
    as yt-dlp reads it; None when the page states none (YouTube's standard licence)."""
    for _, row in walk(data or {}, ("metadataRowRenderer",)):
        if text_of(row.get("title")) == "License":
            contents = row.get("contents") or [None]
            return text_of(contents[0])
    return None


def _iso_date(text: Optional[str]) -> Optional[str]:
    m = re.match(r"^([0-9]{4})-?([0-9]{2})-?([0-9]{2})", text if isinstance(text, str) else "")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else None


@page_parser
def parse_watch_page(html: str, url: str) -> Watch:
    """Video details, licence, playability and stream URLs of a watch page; PageError without player data."""
    player = extract_json_var(html, "ytInitialPlayerResponse")
    if player is None:
        raise PageError("no_ytInitialPlayerResponse",
                        f"{url}: no ytInitialPlayerResponse JSON in the page (expected "
                        "`var ytInitialPlayerResponse = {{...}}`); not a watch page, or its layout changed")
    data = extract_json_var(html, "ytInitialData")
    details = player.get("videoDetails") or {}
    micro = (player.get("microformat") or {}).get("playerMicroformatRenderer") or {}
    vid = details.get("videoId") or video_id_from_href(url)
    if not isinstance(vid, str) or not VIDEO_ID.match(vid):
        raise PageError("no_video_id", f"{url}: videoDetails.videoId missing or malformed")
    length = details.get("lengthSeconds") or micro.get("lengthSeconds")
    channel_id = details.get("channelId") or micro.get("externalChannelId")
    video = Video(
        id=vid, title=string(details.get("title")) or text_of(micro.get("title")),
        duration_s=seconds(length),
        channel_id=channel_id if isinstance(channel_id, str) and CHANNEL_ID.match(channel_id) else None,
        channel=string(details.get("author")) or string(micro.get("ownerChannelName")),
        upload_date=_iso_date(micro.get("uploadDate") or micro.get("publishDate")),
        license=license_of(data), live=bool(details.get("isLive") or details.get("isUpcoming")))
    status = player.get("playabilityStatus") or {}
    reason = status.get("reason") or text_of(((status.get("errorScreen") or {}).get("playerErrorMessageRenderer")
                                              or {}).get("reason"))
    streaming = player.get("streamingData") or {}
    formats = tuple(f for f in (streaming.get("formats") or []) + (streaming.get("adaptiveFormats") or [])
                    if isinstance(f, dict))
    return Watch(video, string(status.get("status")) or "OK", string(reason), formats)
