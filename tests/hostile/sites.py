"""Hostile LibriVox and YouTube sites for the scraper hostile-input tests, built on HostileServer.

`LibriVoxSite`: the API (`?id=N` and paging), book pages and audio, each of which a test may replace with a
hostile behaviour. `YouTubeSite`: watch pages (ytInitialPlayerResponse with the stream URL a test chooses) and
media. Both serve robots.txt and record every request.
"""
from __future__ import annotations

import html as htmllib
import json
import urllib.parse
from typing import Dict, List, Optional, Sequence, Tuple

from tests.hostile.server import Behaviour, HostileServer, robots, static
from tests.scrapers.youtube.conftest import CC, script_json

NOT_FOUND = '{"error":"Audiobooks could not be found"}'
Section = Tuple[int, str, str, Optional[str], int]  # (number, reader id, reader name, audio name, seconds)


def api_book(bid: str, sections: Sequence[Section], **extra) -> Dict:
    data = {"id": bid, "title": f"Book {bid}", "language": "English", "url_librivox": f"https://librivox.org/book-{bid}/",
            "totaltimesecs": 9, "genres": [{"id": "6", "name": "Poetry"}], "sections": [
                {"id": f"{bid}{num:03d}", "section_number": str(num), "title": f"Chapter {num}", "playtime": str(secs),
                 "listen_url": None, "readers": [{"reader_id": rid, "display_name": name}]}
                for num, rid, name, _audio, secs in sections]}
    data.update(extra)
    return data


def book_page(bid: str, base: str, sections: Sequence[Section]) -> str:
    rows = []
    for num, rid, name, audio, secs in sections:
        play = f'<a class="play-btn" href="{base}/audio/{audio}"></a>' if audio else ""
        who = f'<a href="https://librivox.org/reader/{htmllib.escape(rid)}">{htmllib.escape(name)}</a>'
        rows.append(f"<tr><td>{play} {num:02d}</td><td>Chapter {num}</td><td>{who}</td><td>00:00:{secs:02d}</td></tr>")
    return (f"<html><body><h1>Book {htmllib.escape(bid)}</h1><table class='chapter-download'><tbody>{''.join(rows)}"
            f"</tbody></table><a href='https://librivox.org/rss/{htmllib.escape(bid)}'>RSS</a></body></html>")


class LibriVoxSite(HostileServer):
    """A LibriVox whose API, book pages and audio a test fills in: `book(...)`, `audio(...)`, `api_page(...)`."""

    def __init__(self):
        self.by_id: Dict[str, Behaviour] = {}
        self.pages: List[Behaviour] = []  # API pages by offset // limit
        super().__init__()
        self.route("/robots.txt", robots())
        self.route("/api/feed/audiobooks/", self._api)
        self.route("*", static(404, "not found"))

    def _api(self, h, q):
        if "id" in q:
            return self.by_id.get(q["id"], static(404, NOT_FOUND, "application/json"))(h, q)
        page = int(q.get("offset") or 0) // max(1, int(q.get("limit") or 50))
        return (self.pages[page] if page < len(self.pages) else static(404, NOT_FOUND, "application/json"))(h, q)

    def book(self, bid: str, sections: Sequence[Section], api: Optional[Behaviour] = None,
             page: Optional[Behaviour] = None) -> Dict:
        """Serve book `bid` at `?id=` and its book page; returns its API object."""
        data = api_book(bid, sections)
        self.by_id[bid] = api or static(200, json.dumps({"books": [data]}), "application/json")
        safe = urllib.parse.quote(bid, safe="")
        self.route(f"/book-{safe}/", page or static(200, book_page(bid, self.base, sections)))
        return data

    def api_page(self, books: Sequence[Dict]) -> None:
        self.pages.append(static(200, json.dumps({"books": list(books)}), "application/json"))

    def audio(self, name: str, behaviour: Behaviour) -> str:
        return self.route(f"/audio/{name}", behaviour)


def watch_html(vid: str, channel: str, stream_url: str, seconds: int = 4, title: Optional[str] = None,
               license: Optional[str] = CC, player: Optional[Dict] = None, data: Optional[Dict] = None) -> str:
    """A watch page with YouTube's shapes: one audio stream at `stream_url`."""
    player = player if player is not None else {
        "playabilityStatus": {"status": "OK"},
        "videoDetails": {"videoId": vid, "title": title or f"Lecture {vid}", "lengthSeconds": str(seconds),
                         "channelId": channel, "author": "Hostile Channel"},
        "microformat": {"playerMicroformatRenderer": {"uploadDate": "2021-03-04", "externalChannelId": channel}},
        "streamingData": {"adaptiveFormats": [{"itag": 251, "url": stream_url, "mimeType": 'audio/webm; codecs="opus"',
                                               "bitrate": 24000, "audioSampleRate": "48000"}]}}
    rows = [{"metadataRowRenderer": {"title": {"simpleText": "License"}, "contents": [{"runs": [{"text": license}]}]}}]
    data = data if data is not None else {"contents": {"metadataRowContainerRenderer": {"rows": rows}}}
    return (f"<!DOCTYPE html><html><body>{script_json('ytInitialPlayerResponse', player)}"
            f"{script_json('ytInitialData', data)}</body></html>")


class YouTubeSite(HostileServer):
    """A YouTube mirror whose watch pages (`video`) and media (`media`) a test sets."""

    def __init__(self):
        self.watch: Dict[str, Behaviour] = {}
        super().__init__()
        self.route("/robots.txt", robots())
        self.route("/watch", lambda h, q: self.watch.get(q.get("v", ""), static(404, "no such video"))(h, q))

    def video(self, vid: str, channel: str, stream: str, page: Optional[Behaviour] = None, **kw) -> None:
        """Watch page of `vid` whose stream is `stream` (a path on this server or a full URL)."""
        url = stream if "://" in stream else self.base + stream
        self.watch[vid] = page or static(200, watch_html(vid, channel, url, **kw))

    def media(self, name: str, behaviour: Behaviour) -> str:
        return self.route(f"/media/{name}", behaviour)
