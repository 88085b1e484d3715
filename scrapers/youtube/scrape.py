"""YouTube selection and downloads: list a source, filter, cap per speaker, download, write the manifest.

Order per video: cheap filters on what the listing shows (title, duration) -> yt-dlp metadata (licence,
duration, channel; no download) -> licence/duration/title filters and the per-speaker cap -> download ->
manifest line (a pipelines.manifest `ManifestRecord`; metadata that does not fit that contract is a
rejection at stage "manifest", before any download). A rerun lists again and skips ids already in
OUT/manifest.jsonl (and yt-dlp's archive), so an interrupted run finishes as if never stopped. Pure
functions decide (`refusal`, `speaker_of`).
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import urllib.parse
from typing import Callable, ClassVar, Dict, List, Optional, Tuple

from pipelines.manifest import ManifestError, ManifestRecord
from pipelines.progress import Progress
from pipelines.schema import safe_name
from scrapers import early_audit
from scrapers.http import USER_AGENT, FetchError, PoliteSession, host_allowed, host_of
from scrapers.jsonl import JsonlAppender, drop_resolved, read_jsonl
from scrapers.output import Reject, ScrapeConfig, exclusive, inside, write_config
from scrapers.youtube import download, lister, pages
from scrapers.youtube.pages import Video

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.youtube.com"
SOURCE = "youtube"
MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
ARCHIVE = "download-archive.txt"
STANDARD_LICENSE = "Standard YouTube License"  # what a watch page without a License row means
# Titles that suggest more than one voice; --exclude '' turns this off.
DEFAULT_EXCLUDE = (r"\b(?:interview|interviews|podcast|panel|debate|discussion|conversation|duet|q\s*&\s*a|"
                   r"ft\.|feat\.|featuring|guest|with special guest)(?!\w)")
CC_SEARCH_FILTER = "EgIwAQ%3D%3D"  # the search results "Creative Commons" feature filter (sp=)
# Rejections a rerun can trust without asking YouTube again (the folder's licence mode never changes).
STABLE_REASONS = ("license_not_cc",)


@dataclasses.dataclass
class Config(ScrapeConfig):
    IDENTITY_KEYS: ClassVar[Tuple[str, ...]] = ("base_url", "license")

    out: str
    base_url: str = DEFAULT_BASE_URL
    channel: Optional[str] = None  # listing URL (already mapped onto base_url)
    playlist: Optional[str] = None
    search: Optional[str] = None  # the query
    videos: Tuple[Tuple[str, Optional[str]], ...] = ()  # (video id, speaker name) from --urls
    speaker: Optional[str] = None
    lister: str = "browser"
    license: str = "cc"
    min_duration: float = 60.0
    max_duration: float = 3 * 3600.0
    include: Optional[str] = None
    exclude: Optional[str] = DEFAULT_EXCLUDE
    max_videos: Optional[int] = None
    max_seconds_per_speaker: Optional[float] = None
    dry_run: bool = False
    sleep: float = 5.0
    max_sleep: float = 15.0
    sleep_requests: float = 1.0
    rate_limit_kb: Optional[float] = None
    retries: int = 5
    timeout: float = 30.0
    min_interval: float = 1.0
    scroll_wait: float = 2.0
    patience: int = 3
    max_file_mb: float = 2048.0
    min_rate_kb: float = 1.0
    max_retry_after: float = 120.0
    max_page_mb: float = 50.0
    progress: bool = True
    audit_model: Optional[str] = None  # scrapers.early_audit
    audit_first: int = 3
    audit_max_failures: int = 2


# -------------------------------------------------------------------------------------------------
# Sources: URLs under the base URL
# -------------------------------------------------------------------------------------------------
def site_hosts(base_url: str) -> Tuple[str, ...]:
    """Hosts a source URL may name: YouTube's and the --base-url host."""
    hosts = list(pages.YOUTUBE_HOSTS)
    base_host = host_of(base_url)
    if base_host and not host_allowed(base_host, hosts):
        hosts.append(base_host)
    return tuple(hosts)


def allowed_hosts(base_url: str) -> Tuple[str, ...]:
    """Everything a run may contact: the site hosts and YouTube's media host."""
    return site_hosts(base_url) + pages.MEDIA_HOSTS


def _on_site(url: str, base_url: str, what: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL, got {url!r}")
    if not host_allowed(parts.hostname, site_hosts(base_url)):
        raise ValueError(f"{what} must be a YouTube URL (youtube.com, youtu.be) or on the --base-url host "
                         f"{host_of(base_url)!r}, got host {parts.hostname!r}")
    return parts


def channel_videos_url(url: str, base_url: str) -> str:
    """`<base>/@handle/videos` (or /channel/UC.../videos, /c/NAME/videos, /user/NAME/videos) for a channel URL."""
    parts = _on_site(url, base_url, "--channel")
    m = re.match(r"^/(@[A-Za-z0-9_.\-]{1,100}|channel/UC[A-Za-z0-9_-]{22}|c/[A-Za-z0-9_.\-]{1,100}|"
                 r"user/[A-Za-z0-9_.\-]{1,100})(?:/(?:videos|featured|streams)?)?/?$", parts.path)
    if not m:
        raise ValueError(f"--channel expects https://www.youtube.com/@HANDLE or /channel/UC<22 chars>, got {url!r}")
    return f"{base_url.rstrip('/')}/{m.group(1)}/videos"


def playlist_url(url: str, base_url: str) -> str:
    parts = _on_site(url, base_url, "--playlist")
    pid = (urllib.parse.parse_qs(parts.query).get("list") or [""])[0]
    if not pages.PLAYLIST_ID.match(pid):
        raise ValueError(f"--playlist expects https://www.youtube.com/playlist?list=ID, got {url!r}")
    return f"{base_url.rstrip('/')}/playlist?list={pid}"


def search_url(query: str, base_url: str, cc_only: bool) -> str:
    url = f"{base_url.rstrip('/')}/results?search_query={urllib.parse.quote_plus(query)}"
    return url + f"&sp={CC_SEARCH_FILTER}" if cc_only else url


def video_id_of(url: str, base_url: str) -> str:
    """The id of a watch URL (`/watch?v=ID`, `youtu.be/ID`, `/shorts/ID`); ValueError otherwise."""
    _on_site(url, base_url, "a video URL")
    vid = pages.video_id_from_href(url.strip())
    if vid is None:
        raise ValueError(f"expected a video URL (https://www.youtube.com/watch?v=<11-character id> or "
                         f"https://youtu.be/<id>), got {url.strip()!r}")
    return vid


def read_urls_file(path: str, base_url: str) -> List[Tuple[str, Optional[str]]]:
    """(video id, speaker name) per URL line; `# speaker: NAME` labels the following URLs, other `#` lines are
    comments. ValueError('FILE:LINE: ...') on a malformed line or when the file names no video."""
    out: List[Tuple[str, Optional[str]]] = []
    speaker: Optional[str] = None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                m = re.match(r"^#\s*speaker\s*:\s*(.*)$", line, re.I)
                if m:
                    speaker = m.group(1).strip() or None
                    if speaker is None:
                        raise ValueError(f"{path}:{n}: '# speaker:' needs a name")
                continue
            try:
                out.append((video_id_of(line, base_url), speaker))
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
    if not out:
        raise ValueError(f"{path}: no video URLs (expected one https://www.youtube.com/watch?v=ID per line)")
    return out


def source_url(cfg: Config) -> Optional[str]:
    if cfg.channel:
        return cfg.channel
    if cfg.playlist:
        return cfg.playlist
    if cfg.search is not None:
        return search_url(cfg.search, cfg.base_url, cfg.license == "cc")
    return None


# -------------------------------------------------------------------------------------------------
# Selection: plain functions
# -------------------------------------------------------------------------------------------------
def is_cc(license_text: Optional[str]) -> bool:
    return bool(license_text) and bool(re.search(r"creative\s*commons|\bcc[- ]?by\b", license_text, re.I))


def refusal(v: Video, cfg: Config, complete: bool) -> Optional[Tuple[str, str]]:
    """(reason, message) when `v` must be skipped, else None. With `complete` False only the fields the
    listing showed are judged (the licence and missing values wait for the metadata)."""
    if v.live:
        return "live", "live or upcoming stream"
    if v.title is not None:
        if cfg.include and not re.search(cfg.include, v.title, re.I):
            return "title_not_included", f"title {v.title!r} does not match --include"
        if cfg.exclude and re.search(cfg.exclude, v.title, re.I):
            return "title_excluded", f"title {v.title!r} matches --exclude"
    if v.duration_s is None:
        return ("no_duration", "the duration is unknown") if complete else None
    if v.duration_s < cfg.min_duration:
        return "too_short", f"{v.duration_s:.0f} s < --min-duration {cfg.min_duration:.0f}"
    if v.duration_s > cfg.max_duration:
        return "too_long", f"{v.duration_s:.0f} s > --max-duration {cfg.max_duration:.0f}"
    if complete and cfg.license == "cc" and not is_cc(v.license):
        return "license_not_cc", f"licence: {v.license or STANDARD_LICENSE + ' (none stated)'}"
    return None


def speaker_of(v: Video, name: Optional[str]) -> Optional[Tuple[str, str]]:
    """(speaker key, display name): `youtube:<safe NAME>` for a given name, else `youtube:<channelId>`."""
    if name:
        return f"{SOURCE}:{safe_name(name)}", name
    if v.channel_id:
        return f"{SOURCE}:{v.channel_id}", v.channel or v.channel_id
    return None


def record_id(video_id: str) -> str:
    return f"{SOURCE}-{video_id}"


def audio_stem(out: str, v: Video) -> Tuple[str, str]:
    """(relative folder, absolute path without extension): audio/<channel id>/<video id>; ids validated."""
    if not pages.VIDEO_ID.match(v.id):
        raise FetchError("unsafe_path", f"bad video id {v.id!r}")
    channel = v.channel_id if v.channel_id and pages.CHANNEL_ID.match(v.channel_id) else "unknown-channel"
    rel = f"audio/{channel}"
    stem = os.path.join(out, "audio", channel, v.id)
    if not inside(out, stem):
        raise FetchError("unsafe_path", stem)
    return rel, stem


def file_digest(path: str) -> Tuple[int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return os.path.getsize(path), digest.hexdigest()


def record_for(v: Video, speaker: Tuple[str, str], rel_path: str, url: str, license_filter: str,
               size: Optional[int] = None, sha256: Optional[str] = None) -> ManifestRecord:
    """The manifest record of a video (ManifestError when its metadata does not fit the contract)."""
    return ManifestRecord(
        id=record_id(v.id), path=rel_path, speaker=speaker[0], speaker_name=speaker[1], recording=v.id,
        group=f"{SOURCE}-channel-{v.channel_id}" if v.channel_id else None, source=SOURCE, url=url,
        license=v.license or STANDARD_LICENSE, title=v.title, duration_s=v.duration_s, sha256=sha256, bytes=size,
        extra=dict(video_id=v.id, channel_id=v.channel_id, channel=v.channel, upload_date=v.upload_date,
                   license_filter=license_filter))


def dry_run_line(v: Video, speaker: Tuple[str, str]) -> str:
    return json.dumps({"id": v.id, "title": v.title, "duration_s": v.duration_s, "channel_id": v.channel_id,
                       "channel": v.channel, "license": v.license, "speaker": speaker[0]}, ensure_ascii=False)


# -------------------------------------------------------------------------------------------------
# Listing (network)
# -------------------------------------------------------------------------------------------------
def make_session(cfg: Config) -> PoliteSession:
    return PoliteSession(allowed_hosts=allowed_hosts(cfg.base_url), min_interval=cfg.min_interval,
                         max_retries=cfg.retries, timeout=cfg.timeout,
                         max_bytes=int(cfg.max_file_mb * 2 ** 20), min_rate=cfg.min_rate_kb * 1024,
                         max_retry_after=cfg.max_retry_after, max_body_bytes=int(cfg.max_page_mb * 2 ** 20))


def make_ytdlp(cfg: Config) -> download.YtDlp:
    return download.YtDlp(download.Options(
        base_url=cfg.base_url, archive=os.path.join(cfg.out, ARCHIVE), allowed_hosts=allowed_hosts(cfg.base_url),
        sleep=cfg.sleep, max_sleep=cfg.max_sleep, sleep_requests=cfg.sleep_requests,
        rate_limit=cfg.rate_limit_kb * 1024 if cfg.rate_limit_kb else None, retries=cfg.retries,
        timeout=cfg.timeout, progress=cfg.progress, user_agent=USER_AGENT, max_bytes=int(cfg.max_file_mb * 2 ** 20),
        min_rate=cfg.min_rate_kb * 1024, max_page_bytes=int(cfg.max_page_mb * 2 ** 20)))


Lister = Callable[[str, Optional[int]], pages.Listing]


def list_source(cfg: Config, session: PoliteSession, ytdlp: download.YtDlp,
                browser_lister: Optional[Lister] = None) -> List[Tuple[Video, Optional[str]]]:
    """(video, speaker name) in source order. FetchError/PageError when the source cannot be listed."""
    if cfg.videos:
        return [(Video(vid), name or cfg.speaker) for vid, name in cfg.videos][:cfg.max_videos]
    url = source_url(cfg)
    session.check_url(url)  # allow-list and robots.txt, before any browser or yt-dlp request
    if cfg.lister == "ytdlp":
        target = url
        if cfg.search is not None and not ytdlp.mirror:
            target = f"ytsearch{cfg.max_videos or 100}:{cfg.search}"
        videos = ytdlp.flat_list(target, cfg.max_videos)
    else:
        if browser_lister is None:
            def browser_lister(u, limit):
                return lister.list_in_browser(u, limit, USER_AGENT, session.allowed_hosts, cfg.scroll_wait,
                                              cfg.patience, cfg.timeout, int(cfg.max_page_mb * 2 ** 20))
        videos = list(browser_lister(url, cfg.max_videos).videos)
    if not videos:
        raise FetchError("no_videos", f"{url}: no videos found (expected video items: videoRenderer, "
                                      "gridVideoRenderer, playlistVideoRenderer or lockupViewModel)")
    return [(v, cfg.speaker) for v in videos]


# -------------------------------------------------------------------------------------------------
# The run
# -------------------------------------------------------------------------------------------------
def run(cfg: Config, session: Optional[PoliteSession] = None, ytdlp: Optional[download.YtDlp] = None,
        browser_lister: Optional[Lister] = None, echo: Callable[[str], None] = print,
        note: Callable[[str], None] = lambda s: log.info("%s", s)) -> Dict:
    """List, filter, then download (or print JSON lines, with dry_run); returns the summary.
    FetchError/PageError before anything is written when the source cannot be listed. One run per output
    folder at a time: OutputBusy, before any request, while another run holds OUT/.lock (a dry run writes
    nothing, locks nothing)."""
    with contextlib.nullcontext() if cfg.dry_run else exclusive(cfg.out):
        return _run(cfg, session, ytdlp, browser_lister, echo, note)


def _run(cfg: Config, session: Optional[PoliteSession], ytdlp: Optional[download.YtDlp],
         browser_lister: Optional[Lister], echo: Callable[[str], None], note: Callable[[str], None]) -> Dict:
    session = session or make_session(cfg)
    ytdlp = ytdlp or make_ytdlp(cfg)
    candidates = list_source(cfg, session, ytdlp, browser_lister)
    manifest_path, rejected_path = os.path.join(cfg.out, MANIFEST), os.path.join(cfg.out, REJECTED)
    done = read_jsonl(manifest_path)
    spent: Dict[str, float] = collections.Counter()
    for r in done:
        spent[r["speaker"]] += r.get("duration_s") or 0.0
    stable = {r["id"] for r in read_jsonl(rejected_path) if r.get("reason") in STABLE_REASONS}
    summary: Dict = {"listed": len(candidates), "kept": 0, "downloaded": 0, "skipped_already_done": 0,
                     "rejected": collections.Counter(), "failures": [], "stopped": None}
    manifest = rejected = None
    if not cfg.dry_run:
        os.makedirs(cfg.out, exist_ok=True)
        write_config(cfg.out, cfg)
        manifest = JsonlAppender(manifest_path)
        rejected = JsonlAppender(rejected_path, key=lambda r: (r["id"], r["reason"]))

    def reject(v: Video, stage: str, reason: str, message: str, failed: bool = False) -> None:
        rej = Reject(record_id(v.id), stage, reason, message, ytdlp.watch_url(v.id))
        summary["rejected"][reason] += 1
        if failed:
            summary["failures"].append(rej.to_json())
            log.warning("%s: %s: %s", rej.id, reason, message)
        if rejected is not None:
            rejected.append(rej.to_json())

    early = early_audit.make(cfg.out, cfg.audit_model, cfg.audit_first, cfg.audit_max_failures, cfg.dry_run)
    done_ids = {r["id"] for r in done}
    first_listing: Dict[str, Optional[str]] = {}  # video id -> the speaker name its first listing gave
    downloaded_s = 0.0
    # k of n: the listed videos not done before; yt-dlp draws each download's own bar on a terminal, so ours
    # are then plain lines (every 10 % or 30 s), never a second bar
    todo = len({v.id for v, _ in candidates if record_id(v.id) not in done_ids})
    bar = Progress("download", total=todo, unit="videos", amount="bytes", enabled=cfg.progress and not cfg.dry_run,
                   interactive=False if getattr(ytdlp, "draws_bar", False) else None)
    try:
        bar.__enter__()
        for listed, name in candidates:
            rid = record_id(listed.id)
            if listed.id in first_listing:  # one file per video: a second listing never shares or relabels it
                reject(listed, "select", "path_collision", f"{listed.id} is listed twice; its first listing (speaker "
                                                           f"{first_listing[listed.id] or 'by channel'}) is kept")
                continue
            first_listing[listed.id] = name
            if rid in done_ids:
                summary["skipped_already_done"] += 1
                summary["kept"] += 1
                continue
            try:  # k of n counts the videos tried: downloaded, rejected or failed
                why = refusal(listed, cfg, complete=False)
                if why is None and rid in stable and cfg.license == "cc":
                    why = ("license_not_cc", "not Creative Commons (known from an earlier run)")
                if why:
                    reject(listed, "select", *why)
                    continue
                try:
                    session.check_url(ytdlp.watch_url(listed.id))
                    info = ytdlp.metadata(listed.id)
                except FetchError as exc:
                    if exc.reason == "rate_limited":  # the site asks for a longer pause than we wait: stop
                        raise download.Blocked(exc.message) from None
                    reject(listed, "metadata", exc.reason, exc.message, failed=True)
                    continue
                v = download.video_from_info(info).filled_from(listed)
                speaker = speaker_of(v, name)
                why = refusal(v, cfg, complete=True)
                if why is None and speaker is None:
                    why = ("no_channel_id", "no channel id to name the speaker by (give --speaker)")
                if why is None and cfg.max_seconds_per_speaker is not None \
                        and spent[speaker[0]] + v.duration_s > cfg.max_seconds_per_speaker:
                    why = ("max_seconds_per_speaker", f"{speaker[0]} has {spent[speaker[0]]:.0f} s")
                if why:
                    reject(v, "select", *why)
                    continue
                stop = early.stopped(speaker[0]) if early else None
                if stop:
                    reject(v, "audit", early_audit.REASON, stop)
                    continue
                try:  # the line it will become (the file's path, size and digest are ours, known after download)
                    record_for(v, speaker, f"audio/{v.id}", ytdlp.watch_url(v.id), cfg.license)
                except ManifestError as exc:
                    reject(v, "manifest", exc.reason, exc.message)
                    continue
                if cfg.dry_run:
                    echo(dry_run_line(v, speaker))
                    spent[speaker[0]] += v.duration_s
                    summary["kept"] += 1
                    continue
                try:
                    rel_dir, stem = audio_stem(cfg.out, v)
                    path = ytdlp.download(info, stem, bar.add_amount) or download.find_existing(stem)
                    if path is None:
                        raise FetchError("archived_file_missing", f"{ARCHIVE} lists {v.id} but {stem}.* is gone; "
                                                                  "remove its line to download it again")
                except FetchError as exc:
                    reject(v, "download", exc.reason, exc.message, failed=True)
                    continue
                rel_path = f"{rel_dir}/{os.path.basename(path)}"
                size, sha256 = file_digest(os.path.join(cfg.out, *rel_path.split("/")))
                line = record_for(v, speaker, rel_path, ytdlp.watch_url(v.id), cfg.license, size, sha256).to_json()
                manifest.append(line)
                if early:
                    early.check(speaker[0], line["id"], os.path.join(cfg.out, *rel_path.split("/")))
                spent[speaker[0]] += v.duration_s
                downloaded_s += v.duration_s
                summary["downloaded"] += 1
                summary["kept"] += 1
            finally:
                bar.advance(1)
    except download.Blocked as exc:
        summary["stopped"] = (f"YouTube refused further requests ({exc}); stopped early, everything finished so "
                              "far is kept: wait (hours) before rerunning, or lower the request rate")
        log.error("%s", summary["stopped"])
    finally:
        bar.close()
        if manifest is not None:
            manifest.close()
            rejected.close()
        if early:
            early.close()
    summary["rejected"] = dict(sorted(summary["rejected"].items()))
    summary["unreachable"] = session.unreachable()
    if cfg.dry_run:
        note(summary_text(summary))
        return summary
    records = read_jsonl(manifest_path)
    drop_resolved(rejected_path, {r["id"] for r in records})
    summary.update({"hours_downloaded": round(downloaded_s / 3600, 4), "manifest_records": len(records),
                    "hours_in_manifest": round(sum(r.get("duration_s") or 0 for r in records) / 3600, 4)})
    write_config(cfg.out, cfg, {"last_summary": summary})
    echo(summary_text(summary))
    return summary


def summary_text(s: Dict) -> str:
    lines = [f"videos listed: {s['listed']}  kept: {s['kept']} ({s['skipped_already_done']} already done)"]
    if "manifest_records" in s:
        lines.append(f"downloaded: {s['downloaded']} ({s['hours_downloaded']:.3f} h); manifest: "
                     f"{s['manifest_records']} records, {s['hours_in_manifest']:.3f} h")
    lines.append("rejected: " + (", ".join(f"{k}={v}" for k, v in s["rejected"].items()) or "none"))
    lines.append(f"failures: {len(s['failures'])}")
    lines += [f"could not reach {host}: {why}" for host, why in (s.get("unreachable") or {}).items()]
    if s.get("stopped"):
        lines.append("STOPPED: " + s["stopped"])
    return "\n".join(lines)

