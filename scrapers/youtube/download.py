"""yt-dlp used as a library: video metadata, audio downloads, flat listings, and the mirror extractors.

Each video goes through two calls: `extract_info(url, download=False, process=False)` reads its metadata
(licence, duration, channel) so the scraper can filter before anything is downloaded; then
`process_ie_result(info, download=True)` picks the best audio format, downloads it (`download_archive`,
sleep and rate-limit options, progress hook), and FFmpegExtractAudio keeps the original codec
(opus/m4a/...), which the pipeline decodes with ffmpeg. File names come from validated ids only.

On youtube.com yt-dlp's own YouTube extractors do the work. Any other `--base-url` (a mirror or the test
server) is read by `YoutubeMirror`/`YoutubeMirrorTab`, small extractors registered for that host that parse
the same page data (`ytInitialPlayerResponse` with plain stream URLs, `ytInitialData`) with `pages`; the
rest of the path (options, archive, filters, postprocessing, errors) is the same for both.

Every request yt-dlp makes goes through scrapers/youtube/guard.py: the allow-list (redirects included, http(s)
only), the whole-request deadline and minimum download rate, and the page and file size caps; what they
refuse is a per-video FetchError with its reason (host_not_allowed, too_large, timeout), never a crash.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import urllib.parse
from typing import Callable, Dict, List, Optional, Tuple

from scrapers.http import FetchError, host_allowed, host_of
from scrapers.youtube import pages

log = logging.getLogger(__name__)

# HTTP 429, YouTube's bot check and its "session rate-limited" message: the run must stop.
BLOCKED = re.compile(r"HTTP Error 429|Too Many Requests|confirm you.{0,3}re not a bot|rate[- ]limited", re.I)


OWN_REASON = re.compile(r"\b(timeout|host_not_allowed|too_large|invalid_page|malformed_page|no_ytInitialData|"
                        r"no_ytInitialPlayerResponse|no_video_id): ")


class Blocked(Exception):
    """YouTube refuses us (HTTP 429 or a "confirm you're not a bot" page): stop the run, keep what is done."""


def is_youtube(base_url: str) -> bool:
    return host_allowed(host_of(base_url), pages.YOUTUBE_HOSTS)


def first_line(text: str, limit: int = 300) -> str:
    line = next((l for l in str(text).splitlines() if l.strip()), "")
    return re.sub(r"^ERROR:\s*", "", line)[:limit]


def failure(exc: Exception) -> FetchError:
    """A yt-dlp error as a FetchError with a short reason; raises Blocked for 429 / bot checks."""
    if isinstance(exc, RecursionError):
        return FetchError("invalid_page", "the page's JSON is nested too deeply to parse")
    message = first_line(str(exc))
    if BLOCKED.search(str(exc)):
        raise Blocked(message)
    m = re.search(r"HTTP Error (\d{3})", str(exc))
    if m:
        return FetchError(f"http_{m.group(1)}", message)
    m = OWN_REASON.search(message)
    if m:  # a reason of ours (the guard's, the page parser's) inside yt-dlp's wording
        return FetchError(m.group(1), message)
    lowered = message.lower()
    for needle, reason in (("private video", "private"), ("unavailable", "unavailable"),
                           ("not available", "unavailable"), ("members-only", "members_only"),
                           ("sign in", "login_required"), ("copyright", "copyright"), ("ffmpeg", "postprocessing"),
                           ("no video formats", "no_formats"), ("requested format", "no_formats")):
        if needle in lowered:
            return FetchError(reason, message)
    return FetchError("download_error", message)


# -------------------------------------------------------------------------------------------------
# Extractors for a --base-url that is not YouTube (a mirror, or the test server)
# -------------------------------------------------------------------------------------------------
def _ext_of(mime: str) -> Tuple[str, str, str]:
    """(ext, acodec, vcodec) from a mimeType such as 'audio/webm; codecs="opus"'; an extension that is not a short
    plain word (page data names it) is 'bin'."""
    kind, _, rest = (mime if isinstance(mime, str) else "").partition(";")
    codecs = re.search(r'codecs="([^"]*)"', rest)
    codec = codecs.group(1).split(",")[0].strip() if codecs else None
    subtype = kind.split("/")[-1].strip()
    ext = {"mp4": "m4a" if kind.startswith("audio") else "mp4", "webm": "webm", "ogg": "ogg",
           "mpeg": "mp3", "wav": "wav", "x-wav": "wav", "flac": "flac"}.get(subtype, subtype or "bin")
    if not re.fullmatch(r"[a-z0-9]{1,5}", ext):
        ext = "bin"
    if kind.startswith("audio"):
        return ext, codec or "unknown", "none"
    return ext, "unknown", codec or "unknown"


def mirror_extractors(base_url: str):
    """InfoExtractor classes for `<base>/watch?v=ID` and the listing paths under `base_url`."""
    from yt_dlp.extractor.common import InfoExtractor
    from yt_dlp.utils import ExtractorError

    base = base_url.rstrip("/")
    base_host = host_of(base)
    prefix = re.escape(base)

    class YoutubeMirrorIE(InfoExtractor):
        IE_NAME = "youtube:mirror"
        _VALID_URL = prefix + r"/watch\?(?:[^#]*&)?v=(?P<id>[A-Za-z0-9_-]{11})"

        def _real_extract(self, url):
            video_id = self._match_id(url)
            html = self._download_webpage(url, video_id)
            try:
                watch = pages.parse_watch_page(html, url)
            except pages.PageError as exc:
                raise ExtractorError(f"{exc.reason}: {exc.message}", expected=True)
            if watch.playability != "OK":
                raise ExtractorError(watch.reason or f"playability status {watch.playability}", expected=True)
            formats, refused = [], []
            for f in watch.formats:
                url_ = urllib.parse.urljoin(base + "/", f.get("url") or "") if isinstance(f.get("url"), str) else ""
                if url_ and urllib.parse.urlsplit(url_).scheme not in ("http", "https"):
                    refused.append(url_)  # file://, data:, ...: never read
                    continue
                if not url_ or host_of(url_) != base_host:
                    continue  # ciphered or off-host streams are not followed
                ext, acodec, vcodec = _ext_of(f.get("mimeType") or "")
                itag = pages.whole_number(f.get("itag"), 6)
                bitrate = pages.whole_number(f.get("averageBitrate")) or pages.whole_number(f.get("bitrate"))
                formats.append({"format_id": str(len(formats) if itag is None else itag), "url": url_, "ext": ext,
                                "acodec": acodec, "vcodec": vcodec, "abr": bitrate / 1000 if bitrate else None,
                                "asr": pages.whole_number(f.get("audioSampleRate"), 7),
                                "filesize": pages.whole_number(f.get("contentLength"))})
            if not formats and refused:
                raise ExtractorError(f"host_not_allowed: stream URL {refused[0][:100]!r} is not http(s)", expected=True)
            if not formats:
                raise ExtractorError("No video formats found (no stream with a plain URL on this host)", expected=True)
            v = watch.video
            return {"id": v.id, "title": v.title or v.id, "duration": v.duration_s, "channel_id": v.channel_id,
                    "channel": v.channel, "uploader": v.channel, "license": v.license,
                    "upload_date": v.upload_date.replace("-", "") if v.upload_date else None,
                    "live_status": "is_live" if v.live else "not_live", "formats": formats, "webpage_url": url}

    class YoutubeMirrorTabIE(InfoExtractor):
        IE_NAME = "youtube:mirror:tab"
        _VALID_URL = prefix + r"/(?P<id>(?:@[^/?#]+|channel/UC[A-Za-z0-9_-]{22}|c/[^/?#]+|user/[^/?#]+)(?:/videos)?/?|playlist\?[^#]+|results\?[^#]+)$"

        def _real_extract(self, url):
            html = self._download_webpage(url, "listing")
            try:
                listing = pages.parse_listing(html, url)
            except pages.PageError as exc:
                raise ExtractorError(f"{exc.reason}: {exc.message}", expected=True)
            entries = [self.url_result(f"{base}/watch?v={v.id}", YoutubeMirrorIE, v.id, v.title,
                                       duration=v.duration_s, channel_id=v.channel_id, channel=v.channel)
                       for v in listing.videos]
            return self.playlist_result(entries, listing.channel_id or "listing", listing.title)

    return YoutubeMirrorIE, YoutubeMirrorTabIE


# -------------------------------------------------------------------------------------------------
# The YoutubeDL wrapper
# -------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Options:
    base_url: str
    archive: Optional[str] = None  # download_archive file
    allowed_hosts: Tuple[str, ...] = ()
    sleep: float = 5.0  # sleep_interval (before each download), up to max_sleep
    max_sleep: float = 15.0
    sleep_requests: float = 1.0  # sleep_interval_requests (between extraction requests)
    rate_limit: Optional[float] = None  # bytes/s
    retries: int = 5
    timeout: float = 30.0
    progress: bool = True  # yt-dlp draws its own bar for each download when stderr is a terminal
    user_agent: Optional[str] = None  # sent to mirrors; youtube.com gets yt-dlp's own headers
    max_bytes: Optional[int] = None  # a media file, counted as it arrives
    min_rate: float = 1024.0  # bytes/s a media download must keep up (over `timeout` windows); 0: no minimum
    max_page_bytes: int = 50 * 2 ** 20  # a page, decompressed


class _Logger:
    """yt-dlp's messages into logging (never stdout: --dry-run prints JSON there)."""

    def debug(self, msg):
        log.debug("%s", msg)

    def info(self, msg):
        log.debug("%s", msg)

    def warning(self, msg):
        log.warning("yt-dlp: %s", msg)

    def error(self, msg):
        log.debug("yt-dlp: %s", msg)  # raised as DownloadError and reported by the caller


class ProgressHook:
    """yt-dlp's progress hook (checks `status`): the bytes of each file as they arrive, to `on_bytes(n)`."""

    def __init__(self, on_bytes: Optional[Callable[[int], None]] = None):
        self.on_bytes = on_bytes
        self.seen: Dict[str, int] = {}

    def __call__(self, d: Dict) -> None:
        if d.get("status") not in ("downloading", "finished") or self.on_bytes is None:
            return
        name = str(d.get("tmpfilename") or d.get("filename") or "")
        done = d.get("downloaded_bytes") or d.get("total_bytes") or 0
        if isinstance(done, (int, float)) and done > self.seen.get(name, 0):
            self.on_bytes(int(done) - self.seen.get(name, 0))
            self.seen[name] = int(done)


class YtDlp:
    """Metadata, downloads and flat listings through YoutubeDL, on youtube.com or a mirror."""

    def __init__(self, opts: Options):
        self.opts = opts
        self.base = opts.base_url.rstrip("/")
        self.mirror = not is_youtube(self.base)
        self._extractors = mirror_extractors(self.base) if self.mirror else ()
        self.watch_key = "YoutubeMirror" if self.mirror else "Youtube"
        self._meta = None
        self.draws_bar = bool(opts.progress and sys.stderr.isatty())  # yt-dlp's own bar (callers draw none)
        from scrapers.youtube.guard import Guard, Limits

        self.guard = Guard(Limits(tuple(opts.allowed_hosts), opts.timeout, opts.min_rate, opts.max_page_bytes,
                                  opts.max_bytes))

    def watch_url(self, video_id: str) -> str:
        return f"{self.base}/watch?v={video_id}"

    def params(self, **extra) -> Dict:
        o = self.opts
        p = {"quiet": True, "no_warnings": False, "noprogress": True, "logger": _Logger(), "noplaylist": True,
             "ignoreerrors": False, "retries": o.retries, "fragment_retries": o.retries,
             "extractor_retries": min(o.retries, 3), "socket_timeout": o.timeout, "cachedir": False,
             "sleep_interval_requests": o.sleep_requests, "color": {"stdout": "never", "stderr": "never"}}
        if o.user_agent and self.mirror:
            p["http_headers"] = {"User-Agent": o.user_agent}
        if o.max_bytes:
            p["max_filesize"] = o.max_bytes
        p.update(extra)
        return p

    def new(self, **extra):
        from scrapers.youtube.guard import GuardedYoutubeDL

        ydl = GuardedYoutubeDL(self.params(**extra), self.guard)
        for ie in self._extractors:
            ydl.add_info_extractor(ie())
        return ydl

    def _failure(self, exc: Exception) -> FetchError:
        """What a failed call reports: the guard's refusal or timeout when it saw one, else yt-dlp's error."""
        return self.guard.failure() or failure(exc)

    def metadata(self, video_id: str) -> Dict:
        """The extractor's info dict for one video (no download); FetchError, or Blocked."""
        from yt_dlp.utils import YoutubeDLError

        if self._meta is None:
            self._meta = self.new()
        self.guard.events.clear()
        try:
            info = self._meta.extract_info(self.watch_url(video_id), download=False, process=False,
                                           ie_key=self.watch_key)
        except (YoutubeDLError, RecursionError) as exc:
            raise self._failure(exc) from None
        if not info or info.get("id") != video_id:
            raise FetchError("no_metadata", f"no metadata for {video_id}")
        return info

    def download(self, info: Dict, dest_stem: str, on_bytes: Optional[Callable[[int], None]] = None
                 ) -> Optional[str]:
        """Download the best audio of `info` to `dest_stem.<ext>`; the final path, or None when the archive
        says it was done already. FetchError (per video) or Blocked (stop the run). `on_bytes(n)` hears of
        the bytes as they arrive; with `draws_bar`, yt-dlp draws its bar on stderr (its messages then go to
        stderr too, not to our logger, which would swallow the bar)."""
        from yt_dlp.utils import YoutubeDLError

        o = self.opts
        final: List[str] = []
        refused: List[str] = []

        def allowed_streams(info_dict, *, incomplete):
            if incomplete:
                return None
            for f in info_dict.get("requested_formats") or [info_dict]:
                url = f.get("url") or ""
                host = host_of(url)
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    refused.append(f"stream URL {url[:100]!r} is not http(s)")
                    return refused[-1]
                if not host_allowed(host, o.allowed_hosts):
                    refused.append(f"stream host {host!r} is not on the allow-list")
                    return refused[-1]
            return None

        params = dict(
            format="bestaudio/best", outtmpl={"default": dest_stem.replace("%", "%%") + ".%(ext)s"},
            download_archive=o.archive, sleep_interval=o.sleep, max_sleep_interval=max(o.sleep, o.max_sleep),
            ratelimit=o.rate_limit, continuedl=True, overwrites=False, match_filter=allowed_streams,
            progress_hooks=[ProgressHook(on_bytes)], post_hooks=[final.append],
            postprocessors=[{"key": "FFmpegExtractAudio", "preferredcodec": "best"}],
            # bit-exact muxing: no random Ogg serial numbers or timestamps, so a rerun gives the same bytes
            postprocessor_args={"extractaudio": ["-fflags", "+bitexact"]})
        if self.draws_bar:
            params.update(noprogress=False, logtostderr=True, logger=None)
        try:
            from pipelines.decode_ffmpeg import find_ffmpeg

            params["ffmpeg_location"] = find_ffmpeg()
        except Exception:  # noqa: BLE001 - yt-dlp then looks on the PATH itself
            pass
        self.guard.events.clear()
        try:
            with self.new(**params) as ydl:
                ydl.process_ie_result(dict(info), download=True)
        except YoutubeDLError as exc:
            err = self._failure(exc)
            if err.reason == "too_large":  # never resumed: a rerun would only add to it
                remove_partials(dest_stem)
            raise err from None
        if refused:
            raise FetchError("host_not_allowed", refused[0])
        return final[-1] if final else None

    def flat_list(self, url: str, limit: Optional[int]) -> List[pages.Video]:
        """`extract_flat` listing of a channel, playlist or search URL (`ytsearchN:query` on YouTube)."""
        from yt_dlp.utils import YoutubeDLError

        params = {"extract_flat": "in_playlist", "noplaylist": False}
        if limit:
            params["playlistend"] = limit
        self.guard.events.clear()
        try:
            with self.new(**params) as ydl:
                result = ydl.extract_info(url, download=False, ie_key="YoutubeMirrorTab" if self.mirror else None)
        except (YoutubeDLError, RecursionError) as exc:
            raise self._failure(exc) from None
        out = []
        for e in (result or {}).get("entries") or []:
            vid = (e or {}).get("id")
            if not isinstance(vid, str) or not pages.VIDEO_ID.match(vid):
                continue
            cid, duration = e.get("channel_id"), e.get("duration")
            out.append(pages.Video(vid, pages.string(e.get("title")),
                                   positive_seconds(duration),
                                   cid if isinstance(cid, str) and pages.CHANNEL_ID.match(cid) else None,
                                   pages.string(e.get("channel")) or pages.string(e.get("uploader"))))
        return out[:limit] if limit else out


def positive_seconds(value) -> Optional[float]:
    """A duration from an info dict: a finite positive number, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def video_from_info(info: Dict) -> pages.Video:
    """The fields the scraper keeps from an info dict (YouTube's or the mirror extractor's)."""
    cid = info.get("channel_id")
    date = info.get("upload_date")
    duration = info.get("duration")
    return pages.Video(
        id=info["id"], title=pages.string(info.get("title")),
        duration_s=positive_seconds(duration),
        channel_id=cid if isinstance(cid, str) and pages.CHANNEL_ID.match(cid) else None,
        channel=pages.string(info.get("channel")) or pages.string(info.get("uploader")),
        upload_date=f"{date[:4]}-{date[4:6]}-{date[6:8]}" if isinstance(date, str) and len(date) == 8 else None,
        license=pages.string(info.get("license")),
        live=info.get("live_status") in ("is_live", "is_upcoming") or bool(info.get("is_live")))


def remove_partials(dest_stem: str) -> None:
    """Remove yt-dlp's partial files of `dest_stem` (`.part`, `.ytdl`, temp files)."""
    folder, stem = os.path.split(dest_stem)
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(stem + ".") and (name.endswith((".part", ".ytdl", ".temp")) or ".temp." in name
                                            or ".part-" in name):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def find_existing(dest_stem: str) -> Optional[str]:
    """A finished file `dest_stem.<ext>` from an earlier run (not a .part or temp file)."""
    folder, stem = os.path.split(dest_stem)
    if not os.path.isdir(folder):
        return None
    for name in sorted(os.listdir(folder)):
        if name.startswith(stem + ".") and not name.endswith((".part", ".ytdl", ".temp")) \
                and ".temp." not in name and name.count(".") == 1:
            return os.path.join(folder, name)
    return None

