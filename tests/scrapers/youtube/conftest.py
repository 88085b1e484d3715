"""A fake YouTube on 127.0.0.1: channel pages (one that appends items as the browser scrolls), a playlist,
search results, watch pages with player data and licence rows, generated Opus/WebM audio, and failure modes
(HTTP 429, a bot-check page, a missing stream, a slow stream, a page without ytInitialData, robots.txt).

The page data has YouTube's shapes (richItemRenderer -> videoRenderer, gridVideoRenderer, playlistVideoRenderer,
lockupViewModel, ytInitialPlayerResponse), built here from the small catalogue below.
"""
from __future__ import annotations

import html as htmllib
import json
import os
import time
import urllib.parse
from pathlib import Path
from typing import Dict, List

import pytest

from scrapers.localserver import LocalServer, QuietHandler, make_tone

REAL_PAGES = Path(os.environ.get("YOUTUBE_PAGES_DIR", "/work/shared/data/youtube_pages"))
CC = "Creative Commons Attribution license (reuse allowed)"
BOT_CHECK = "Sign in to confirm you\u2019re not a bot. This helps protect our community."
ROBOTS = "User-agent: *\nDisallow: /@private\n"


def channel_id(name: str) -> str:
    return ("UC" + name + "_" * 22)[:24]


ALICE, BOB, CAROL = channel_id("alice"), channel_id("bob"), channel_id("carol")
NAMES = {ALICE: "Alice Lectures", BOB: "Bob Reads", CAROL: "Carol Talks"}
# video id -> title, seconds, channel, licence (None: standard), tone Hz
VIDEOS: Dict[str, Dict] = {
    "aliceVid001": dict(title="Lecture 1: Tides", seconds=4, channel=ALICE, license=CC, freq=180),
    "aliceVid002": dict(title="Lecture 2: Waves", seconds=4, channel=ALICE, license=CC, freq=185),
    "aliceVid003": dict(title="Interview with a sailor", seconds=4, channel=ALICE, license=CC, freq=190),
    "aliceVid004": dict(title="Lecture 4: Currents", seconds=4, channel=ALICE, license=None, freq=195),
    "aliceVid005": dict(title="Lecture 5: Storms", seconds=4, channel=ALICE, license=CC, freq=200),
    "aliceVid006": dict(title="Lecture 6: Gone", seconds=4, channel=ALICE, license=CC, freq=205, media=False),
    "aliceVid007": dict(title="Lecture 7: Ice", seconds=4, channel=ALICE, license=CC, freq=210),
    "aliceVid008": dict(title="Lecture 8: Coasts", seconds=4, channel=ALICE, license=CC, freq=215),
    "bobVideo001": dict(title="Reading: The Raven", seconds=4, channel=BOB, license=CC, freq=300),
    "bobVideo002": dict(title="Reading: Ozymandias", seconds=4, channel=BOB, license=CC, freq=310),
    "carolVid001": dict(title="Talk on kelp", seconds=4, channel=CAROL, license=CC, freq=420),
    "slowVideo01": dict(title="Lecture 9: Slow", seconds=20, channel=ALICE, license=CC, freq=220),
    "rateLimit01": dict(title="Lecture 10", seconds=4, channel=ALICE, license=CC, freq=225),
    "botCheck001": dict(title="Lecture 11", seconds=4, channel=ALICE, license=CC, freq=230),
}
ALICE_PAGES = [["aliceVid001", "aliceVid002", "aliceVid003"], ["aliceVid004", "aliceVid005", "aliceVid006"],
               ["aliceVid007", "aliceVid008"]]  # the first is in ytInitialData, the others come by scrolling


def make_webm(path: Path, freq: float, seconds: float) -> None:
    """Opus in WebM: speech-like bursts (1.2 s tone, 0.6 s pause) of `freq` Hz."""
    make_tone(path, freq, seconds, 48000, ["-c:a", "libopus", "-b:a", "24k"])


def script_json(name: str, obj, style: str = "var") -> str:
    body = json.dumps(obj).replace("</", "<\\/")
    lhs = f'window["{name}"]' if style == "window" else f"var {name}"
    return f"<script>{lhs} = {body};</script>"


def runs_channel(cid: str) -> Dict:
    return {"runs": [{"text": NAMES[cid], "navigationEndpoint": {"browseEndpoint": {"browseId": cid}}}]}


def rich_item(vid: str) -> Dict:
    v = VIDEOS[vid]
    return {"richItemRenderer": {"content": {"videoRenderer": {
        "videoId": vid, "title": {"runs": [{"text": v["title"]}]},
        "lengthText": {"accessibility": {"accessibilityData": {"label": f"{v['seconds']} seconds"}},
                       "simpleText": f"0:{v['seconds']:02d}"}}}}}


def grid_item(vid: str) -> Dict:
    v = VIDEOS[vid]
    return {"gridVideoRenderer": {"videoId": vid, "title": {"simpleText": v["title"]}, "thumbnailOverlays": [
        {"thumbnailOverlayTimeStatusRenderer": {"text": {"simpleText": f"0:{v['seconds']:02d}"}, "style": "DEFAULT"}}]}}


def playlist_item(vid: str) -> Dict:
    v = VIDEOS[vid]
    return {"playlistVideoRenderer": {"videoId": vid, "title": {"runs": [{"text": v["title"]}]},
                                      "shortBylineText": runs_channel(v["channel"]),
                                      "lengthSeconds": str(v["seconds"])}}


def lockup_item(vid: str) -> Dict:
    v = VIDEOS[vid]
    return {"lockupViewModel": {
        "contentId": vid, "contentType": "LOCKUP_CONTENT_TYPE_VIDEO",
        "contentImage": {"thumbnailViewModel": {"overlays": [{"thumbnailBottomOverlayViewModel": {"badges": [
            {"thumbnailBadgeViewModel": {"text": f"0:{v['seconds']:02d}"}}]}}]}},
        "metadata": {"lockupMetadataViewModel": {"title": {"content": v["title"]}, "metadata": {
            "contentMetadataViewModel": {"metadataRows": [{"metadataParts": [{"text": {
                "content": NAMES[v["channel"]], "commandRuns": [{"onTap": {"innertubeCommand": {
                    "browseEndpoint": {"browseId": v["channel"]}}}}]}}]}]}}}}}}


def channel_data(cid: str, items: List[Dict], more: bool) -> Dict:
    contents = list(items) + ([{"continuationItemRenderer": {"trigger": "CONTINUATION_TRIGGER_ON_ITEM_SHOWN"}}]
                              if more else [])
    return {"contents": {"twoColumnBrowseResultsRenderer": {"tabs": [{"tabRenderer": {"title": "Videos", "content": {
        "richGridRenderer": {"contents": contents}}}}]}},
        "metadata": {"channelMetadataRenderer": {"title": NAMES[cid], "externalId": cid}}}


def dom_item(vid: str) -> str:
    """What the browser renders for one item (YouTube's element names; the duration overlay; no channel link)."""
    v = VIDEOS[vid]
    return (f'<ytd-rich-item-renderer style="display:block;height:420px">'
            f'<ytd-thumbnail-overlay-time-status-renderer><span id="text">0:{v["seconds"]:02d}</span>'
            f'</ytd-thumbnail-overlay-time-status-renderer>'
            f'<a id="video-title-link" href="/watch?v={vid}" title="{htmllib.escape(v["title"])}">'
            f'{htmllib.escape(v["title"])}</a></ytd-rich-item-renderer>')


SCROLL_JS = """<script>
let page = 0, loading = false, done = false;
window.addEventListener('scroll', function () {
  if (loading || done) return;
  if (window.innerHeight + window.scrollY < document.body.scrollHeight - 100) return;
  loading = true;
  page += 1;
  fetch('MORE?page=' + page).then(function (r) { return r.text(); }).then(function (t) {
    setTimeout(function () {
      if (!t.trim()) { done = true; }
      document.getElementById('contents').insertAdjacentHTML('beforeend', t);
      loading = false;
    }, 150);
  });
});
</script>"""


def alice_page() -> str:
    data = channel_data(ALICE, [rich_item(v) for v in ALICE_PAGES[0]], more=True)
    return (f"<!DOCTYPE html><html><head><title>{NAMES[ALICE]} - YouTube</title></head><body>"
            f"<div id='contents'>{''.join(dom_item(v) for v in ALICE_PAGES[0])}</div>"
            f"{script_json('ytInitialData', data)}{SCROLL_JS.replace('MORE', '/@alice/more')}</body></html>")


def static_page(data: Dict, style: str = "var") -> str:
    return f"<!DOCTYPE html><html><head><title>YouTube</title></head><body>{script_json('ytInitialData', data, style)}</body></html>"


def watch_page(vid: str, base: str, sizes: Dict[str, int]) -> str:
    v = VIDEOS[vid]
    status = {"status": "OK"}
    if vid == "botCheck001":
        status = {"status": "LOGIN_REQUIRED", "reason": BOT_CHECK}
    player = {
        "playabilityStatus": status,
        "videoDetails": {"videoId": vid, "title": v["title"], "lengthSeconds": str(v["seconds"]),
                         "channelId": v["channel"], "author": NAMES[v["channel"]]},
        "microformat": {"playerMicroformatRenderer": {"uploadDate": "2021-03-04", "externalChannelId": v["channel"],
                                                      "ownerChannelName": NAMES[v["channel"]]}},
        "streamingData": {"adaptiveFormats": [{
            "itag": 251, "url": f"{base}/media/{vid}.webm", "mimeType": 'audio/webm; codecs="opus"',
            "bitrate": 24000, "contentLength": str(sizes.get(vid, 0)), "audioSampleRate": "48000"}]}}
    rows = []
    if v["license"]:
        rows.append({"metadataRowRenderer": {"title": {"simpleText": "License"},
                                             "contents": [{"runs": [{"text": v["license"]}]}]}})
    data = {"contents": {"twoColumnWatchNextResults": {"results": {"results": {"contents": [
        {"videoPrimaryInfoRenderer": {"title": {"runs": [{"text": v["title"]}]}}},
        {"videoSecondaryInfoRenderer": {"owner": {"videoOwnerRenderer": {"title": runs_channel(v["channel"])}},
                                        "metadataRowContainer": {"metadataRowContainerRenderer": {"rows": rows}}}}]}}}}}
    return (f"<!DOCTYPE html><html><head><title>{htmllib.escape(v['title'])} - YouTube</title></head><body>"
            f"{script_json('ytInitialPlayerResponse', player)}{script_json('ytInitialData', data)}</body></html>")


class FakeYouTube(LocalServer):
    def __init__(self, media_dir: Path):
        self.media_dir = media_dir
        self.sizes = {p.stem: p.stat().st_size for p in media_dir.glob("*.webm")}
        self.slow_delay = 0.05
        super().__init__()

    def paths(self, prefix: str) -> List[str]:
        return [r["path"] for r in self.requests if r["path"].startswith(prefix)]

    def _route(self, path: str, q: Dict[str, str]):
        """(status, body, content type) for a page request."""
        if path == "/robots.txt":
            return 200, ROBOTS, "text/plain"
        if path == "/@alice/videos":
            return 200, alice_page(), None
        if path == "/@alice/more":
            page = int(q.get("page", "0"))
            ids = ALICE_PAGES[page] if 0 < page < len(ALICE_PAGES) else []
            return 200, "".join(dom_item(v) for v in ids), None
        if path == "/@bob/videos":
            return 200, static_page(channel_data(BOB, [grid_item("bobVideo001"), grid_item("bobVideo002")], False)), None
        if path == "/@empty/videos":
            return 200, static_page(channel_data(CAROL, [], False)), None
        if path in ("/@broken/videos", "/@private/videos"):
            return 200, "<html><body><h1>Our systems have detected unusual traffic</h1></body></html>", None
        if path == "/playlist" and q.get("list") == "PLmixed":
            data = {"contents": {"playlistVideoListRenderer": {"contents": [
                playlist_item(v) for v in ("carolVid001", "bobVideo001", "aliceVid004")]}},
                "metadata": {"playlistMetadataRenderer": {"title": "Mixed"}}}
            return 200, static_page(data, style="window"), None
        if path == "/results":
            data = {"contents": {"sectionListRenderer": {"contents": [{"itemSectionRenderer": {"contents": [
                lockup_item("carolVid001"), lockup_item("aliceVid001"),
                {"lockupViewModel": {"contentId": "PLsomething", "contentType": "LOCKUP_CONTENT_TYPE_PLAYLIST"}}]}}]}}}
            return 200, static_page(data), None
        if path == "/watch":
            vid = q.get("v", "")
            if vid == "rateLimit01":
                return 429, "Too Many Requests", None
            if vid in VIDEOS:
                return 200, watch_page(vid, self.base, self.sizes), None
        return 404, "not found", None

    def _handler(self):
        server = self

        class Handler(QuietHandler):
            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(parts.query))
                server.record(self, parts.path)
                if parts.path.startswith("/media/"):
                    return self._media(parts.path.rsplit("/", 1)[1])
                status, body, ctype = server._route(parts.path, q)
                headers = {"Retry-After": "3600"} if status == 429 else None
                return self._send(status, body, ctype or "text/html; charset=utf-8", headers)

            def _media(self, name: str):
                f = server.media_dir / name
                if not f.exists():
                    return self._send(404, "no such stream")
                body = self._send_file_headers(f.read_bytes(), "audio/webm")
                if body is None or self.command == "HEAD":
                    return
                step = 2048 if name.startswith("slow") else len(body) or 1
                try:
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        if name.startswith("slow"):
                            time.sleep(server.slow_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


@pytest.fixture(scope="session")
def yt_media(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("yt_media")
    for vid, v in VIDEOS.items():
        if v.get("media", True):
            make_webm(d / f"{vid}.webm", v["freq"], v["seconds"])
    return d


@pytest.fixture(scope="session")
def _yt_server(yt_media):
    srv = FakeYouTube(yt_media)
    yield srv
    srv.close()


@pytest.fixture()
def yt(_yt_server) -> FakeYouTube:
    _yt_server.reset()
    _yt_server.slow_delay = 0.05
    return _yt_server


def real_page(name: str) -> Path:
    path = REAL_PAGES / name
    if not path.exists():
        pytest.skip(f"saved YouTube page {path} not present")
    return path
