"""The YouTube scraper against the fake YouTube: listing, filters, yt-dlp downloads, reruns, SIGKILL, 429 and
bot-check stops, bad inputs, and the manifest fed to the dataset builder."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml  # PyYAML (Beam's dependency): the dataset card's header

from scrapers.http import FetchError
from scrapers.youtube import __main__ as cli
from scrapers.youtube import download, pages, scrape
from tests.scrapers.conftest import assert_manifest_round_trip
from tests.scrapers.youtube.conftest import ALICE, BOB, CAROL, CC, NAMES

REPO = Path(__file__).resolve().parents[3]
FAST = ["--min-interval", "0", "--sleep", "0", "--max-sleep", "0", "--sleep-requests", "0", "--min-duration", "0",
        "--retries", "1", "--no-progress", "--scroll-wait", "1", "--patience", "2"]


def run_cli(yt, out: Path, *flags: str):
    lines = []
    cfg = cli.parse_config(["--out", str(out), "--base-url", yt.base, *FAST, *flags])
    return scrape.run(cfg, echo=lines.append, note=lines.append), lines


def main(yt, out: Path, *flags: str) -> int:
    return cli.main(["--out", str(out), "--base-url", yt.base, *FAST, *flags])


def jsonl(path: Path):
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


def urls_file(tmp_path: Path, text: str) -> str:
    f = tmp_path / "urls.txt"
    f.write_text(text)
    return str(f)


def watch_urls(*ids: str) -> str:
    return "".join(f"https://www.youtube.com/watch?v={v}\n" for v in ids)


@pytest.mark.slow
def test_channels_to_manifest_to_dataset(yt, tmp_path):
    """Local channel pages (the scrolling one in Chromium, one through yt-dlp's flat listing) -> manifest ->
    pipelines.build_dataset."""
    from pipelines import build_dataset

    out = tmp_path / "out"
    summary, lines = run_cli(yt, out, "--channel", "https://www.youtube.com/@alice")
    recs = jsonl(out / "manifest.jsonl")
    assert [r["id"] for r in recs] == [f"youtube-aliceVid00{i}" for i in (1, 2, 5, 7, 8)]
    r = recs[0]
    assert r["path"] == f"audio/{ALICE}/aliceVid001.opus" and r["speaker"] == f"youtube:{ALICE}"
    assert (r["speaker_name"], r["recording"], r["group"]) == (NAMES[ALICE], "aliceVid001", f"youtube-channel-{ALICE}")
    assert (r["source"], r["license"], r["license_filter"], r["title"]) == ("youtube", CC, "cc", "Lecture 1: Tides")
    assert (r["duration_s"], r["upload_date"], r["channel"]) == (4.0, "2021-03-04", NAMES[ALICE])
    assert r["url"] == f"{yt.base}/watch?v=aliceVid001"
    for rec in recs:
        data = (out / rec["path"]).read_bytes()
        assert data[:4] == b"OggS"  # the original Opus stream, kept (not re-encoded) by FFmpegExtractAudio
        assert len(data) == rec["bytes"] and hashlib.sha256(data).hexdigest() == rec["sha256"]
    assert not [p for p in out.rglob("*") if p.suffix in (".part", ".webm", ".ytdl")]
    contract = assert_manifest_round_trip(out)  # what the builder reads is what the scraper wrote
    assert (contract[0].speaker, contract[0].source, contract[0].recording) == (f"youtube:{ALICE}", "youtube",
                                                                                  "aliceVid001")
    assert contract[0].extra == {"video_id": "aliceVid001", "channel_id": ALICE, "channel": NAMES[ALICE],
                                 "upload_date": "2021-03-04", "license_filter": "cc"}
    rejected = {(x["id"], x["stage"], x["reason"]) for x in jsonl(out / "rejected.jsonl")}
    assert rejected == {("youtube-aliceVid003", "select", "title_excluded"),
                        ("youtube-aliceVid004", "select", "license_not_cc"),
                        ("youtube-aliceVid006", "download", "http_404")}
    assert summary["listed"] == 8 and summary["downloaded"] == 5 and len(summary["failures"]) == 1
    assert "/media/aliceVid004.webm" not in yt.paths("/media/")  # filtered before download
    archive = (out / "download-archive.txt").read_text().split()
    assert archive.count("aliceVid001") == 1 and "aliceVid004" not in archive
    assert any("downloaded: 5" in l for l in lines)

    run_cli(yt, out, "--channel", f"{yt.base}/@bob", "--lister", "ytdlp")  # a second speaker, same folder
    assert {r["speaker"] for r in jsonl(out / "manifest.jsonl")} == {f"youtube:{ALICE}", f"youtube:{BOB}"}
    ds = tmp_path / "ds"
    build_dataset.run(["--manifest", str(out / "manifest.jsonl"), "--output", str(ds), "--features", "audio"])
    rows = [r.split("\t") for r in (ds / "speakers.tsv").read_text().splitlines()[1:]]
    assert {r[0] for r in rows} == {f"youtube:{ALICE}", f"youtube:{BOB}"}
    assert {r[1] for r in rows} == {NAMES[ALICE], NAMES[BOB]}
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["counts"]["inputs"] == 7 and meta["counts"]["recordings_with_segments"] == 7
    assert meta["counts"]["rejected"] == 0 and meta["num_speakers"] == 2
    assert sum(split["recordings"] for split in meta["splits"].values()) == 7
    # each 4 s Opus file holds 2.8 s of tone bursts: three 1 s segments per video after silence removal
    assert sum(float(r[3]) + float(r[5]) + float(r[7]) for r in rows) == pytest.approx(7 * 3.0)
    # the dataset card names YouTube's CC licence by its Hub id; sources.tsv credits each video with its channel
    from pipelines.card import SOURCES_COLUMNS

    header = yaml.safe_load((ds / "README.md").read_text().split("---\n")[1])
    assert header["license"] == "cc-by-3.0" and header["task_ids"] == ["speaker-identification"]
    sources = [dict(zip(SOURCES_COLUMNS, r.split("\t"))) for r in (ds / "sources.tsv").read_text().splitlines()[1:]]
    assert len(sources) == 7 and {s["channel"] for s in sources} == {NAMES[ALICE], NAMES[BOB]}
    for s in sources:
        assert s["recording"] in s["urls"] and s["license"] == CC and s["hf_license"] == "cc-by-3.0"
        assert s["attribution"] == f"{s['title']} by {s['speaker_name']}, {s['urls']}, {CC}"
    assert (ds / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    errors = [e.read_text() for e in (ds / "errors").glob("*.jsonl")]
    assert not any(e.strip() for e in errors), errors


def test_rerun_downloads_nothing_and_duplicates_nothing(yt, tmp_path):
    out = tmp_path / "o"
    f = urls_file(tmp_path, watch_urls("bobVideo001", "aliceVid004", "bobVideo002"))
    first, _ = run_cli(yt, out, "--urls", f)
    assert first["downloaded"] == 2 and first["rejected"] == {"license_not_cc": 1}
    before = (out / "manifest.jsonl").read_bytes(), (out / "rejected.jsonl").read_bytes()
    yt.reset()
    second, _ = run_cli(yt, out, "--urls", f)
    assert yt.paths("/media/") == [] and yt.paths("/watch") == []  # done ids and known non-CC: no request
    assert second["skipped_already_done"] == 2 and second["downloaded"] == 0
    assert ((out / "manifest.jsonl").read_bytes(), (out / "rejected.jsonl").read_bytes()) == before


def test_archived_but_unrecorded_video_is_recorded_without_download(yt, tmp_path):
    out = tmp_path / "o"
    f = urls_file(tmp_path, watch_urls("bobVideo001"))
    run_cli(yt, out, "--urls", f)
    line = (out / "manifest.jsonl").read_bytes()
    (out / "manifest.jsonl").write_bytes(b"")  # killed after yt-dlp finished, before the manifest line
    yt.reset()
    run_cli(yt, out, "--urls", f)
    assert yt.paths("/media/") == [] and (out / "manifest.jsonl").read_bytes() == line


def test_dry_run_prints_json_and_writes_nothing(yt, tmp_path, capsys):
    out = tmp_path / "dry"
    code = main(yt, out, "--playlist", "https://www.youtube.com/playlist?list=PLmixed", "--dry-run", "--lister", "ytdlp")
    captured = capsys.readouterr()
    assert code == 0 and not out.exists() and yt.paths("/media/") == []
    listed = [json.loads(l) for l in captured.out.splitlines()]
    assert [(x["id"], x["speaker"], x["license"]) for x in listed] == [
        ("carolVid001", f"youtube:{CAROL}", CC), ("bobVideo001", f"youtube:{BOB}", CC)]
    assert set(listed[0]) == {"id", "title", "duration_s", "channel_id", "channel", "license", "speaker"}
    assert "license_not_cc=1" in captured.err  # aliceVid004, standard licence
    code = main(yt, out, "--playlist", f"{yt.base}/playlist?list=PLmixed", "--dry-run", "--lister", "ytdlp",
                "--license", "any")
    listed = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [x["id"] for x in listed] == ["carolVid001", "bobVideo001", "aliceVid004"] and listed[2]["license"] is None


def test_search_results_with_a_speaker_name(yt, tmp_path):
    summary, lines = run_cli(yt, tmp_path / "o", "--search", "ocean talks", "--speaker", "Jane Doe/../x",
                             "--lister", "ytdlp", "--dry-run")
    listed = [json.loads(l) for l in lines if l.startswith("{")]
    assert [(x["id"], x["speaker"]) for x in listed] == [("carolVid001", "youtube:Jane_Doe_.._x"),
                                                         ("aliceVid001", "youtube:Jane_Doe_.._x")]
    assert yt.paths("/results") == ["/results?search_query=ocean+talks&sp=EgIwAQ%3D%3D"]  # YouTube's CC filter


def test_urls_file_speaker_labels(yt, tmp_path):
    f = urls_file(tmp_path, "# a list\n# speaker: Jane Doe\n" + watch_urls("aliceVid001") +
                  "\nhttps://youtu.be/aliceVid002\n# speaker: Max\n" + watch_urls("bobVideo001"))
    out = tmp_path / "o"
    run_cli(yt, out, "--urls", f)
    recs = {r["id"]: r for r in jsonl(out / "manifest.jsonl")}
    assert recs["youtube-aliceVid001"]["speaker"] == recs["youtube-aliceVid002"]["speaker"] == "youtube:Jane_Doe"
    assert recs["youtube-aliceVid001"]["speaker_name"] == "Jane Doe"
    assert recs["youtube-bobVideo001"]["speaker"] == "youtube:Max"
    assert recs["youtube-bobVideo001"]["path"] == f"audio/{BOB}/bobVideo001.opus"  # folders stay per channel


def test_metadata_that_cannot_become_a_manifest_line_is_rejected_before_download(yt, tmp_path, monkeypatch):
    real = download.video_from_info

    def garbled(info):  # web data the manifest contract refuses: a licence with a control character
        v = real(info)
        return dataclasses.replace(v, license=v.license + "\n") if v.id == "bobVideo002" else v

    monkeypatch.setattr(download, "video_from_info", garbled)
    out = tmp_path / "o"
    summary, _ = run_cli(yt, out, "--urls", urls_file(tmp_path, watch_urls("bobVideo001", "bobVideo002")))
    assert [r["id"] for r in jsonl(out / "manifest.jsonl")] == ["youtube-bobVideo001"]
    assert [(r["id"], r["stage"], r["reason"]) for r in jsonl(out / "rejected.jsonl")] == [
        ("youtube-bobVideo002", "manifest", "invalid_field")]
    assert summary["rejected"] == {"invalid_field": 1} and summary["failures"] == []
    assert yt.paths("/media/") == ["/media/bobVideo001.webm"]


@pytest.mark.parametrize("flags, kept, reason", [
    ([], ["aliceVid001", "aliceVid002", "aliceVid005"], "title_excluded"),
    (["--exclude", ""], ["aliceVid001", "aliceVid002", "aliceVid003", "aliceVid005"], "license_not_cc"),
    (["--license", "any"], ["aliceVid001", "aliceVid002", "aliceVid004", "aliceVid005"], "title_excluded"),
    (["--include", "waves|storms"], ["aliceVid002", "aliceVid005"], "title_not_included"),
    (["--max-duration", "3"], [], "too_long"),
    (["--min-duration", "5"], [], "too_short"),
    (["--max-seconds-per-speaker", "9"], ["aliceVid001", "aliceVid002"], "max_seconds_per_speaker"),
    (["--max-videos", "2"], ["aliceVid001", "aliceVid002"], None),
])
def test_filters_and_caps(yt, tmp_path, flags, kept, reason):
    f = urls_file(tmp_path, watch_urls("aliceVid001", "aliceVid002", "aliceVid003", "aliceVid004", "aliceVid005"))
    summary, lines = run_cli(yt, tmp_path / "o", "--urls", f, "--dry-run", *flags)
    assert [json.loads(l)["id"] for l in lines if l.startswith("{")] == kept
    if reason:
        assert summary["rejected"].get(reason, 0) >= 1


@pytest.mark.parametrize("blocker, message", [("rateLimit01", "HTTP Error 429"), ("botCheck001", "not a bot")])
def test_429_and_bot_check_stop_the_run_keeping_what_is_done(yt, tmp_path, capsys, blocker, message):
    out = tmp_path / "o"
    f = urls_file(tmp_path, watch_urls("bobVideo001", blocker, "bobVideo002"))
    assert main(yt, out, "--urls", f) == 3
    err = capsys.readouterr().err
    assert "stopped" in err and message in err and "wait" in err
    assert [r["id"] for r in jsonl(out / "manifest.jsonl")] == ["youtube-bobVideo001"]
    assert "/watch?v=bobVideo002" not in yt.paths("/watch")  # nothing after the refusal
    assert blocker not in (out / "rejected.jsonl").read_text()  # not a verdict on the video: retried next run
    stored = json.loads((out / "scrape.json").read_text())
    assert message in stored["last_summary"]["stopped"]


@pytest.mark.parametrize("flags, message", [
    (["--channel", "https://evil.example/@alice"], "must be a YouTube URL"),
    (["--channel", "https://www.youtube.com/watch?v=aliceVid001"], "--channel expects"),
    (["--playlist", "https://www.youtube.com/playlist"], "--playlist expects"),
    (["--playlist", "ftp://www.youtube.com/playlist?list=PLx"], "must be an http(s) URL"),
    (["--search", "  "], "--search needs a query"),
    (["--channel", "https://www.youtube.com/@alice", "--include", "(unclosed"], "--include is not a valid"),
    (["--channel", "https://www.youtube.com/@alice", "--base-url", "youtube.com"], "--base-url must be an http(s)"),
    (["--urls", "/nonexistent/urls.txt"], "--urls"),
    (["--channel", "https://www.youtube.com/@a", "--min-duration", "10", "--max-duration", "5"], "--min-duration"),
])
def test_bad_arguments_fail_with_one_line_before_any_request(yt, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exc:
        cli.parse_config(["--out", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and err[-1].startswith("python -m scrapers.youtube: error:")
    assert yt.requests == [] and not (tmp_path / "o").exists()


@pytest.mark.parametrize("text, message", [
    ("", "no video URLs"),
    ("# only comments\n\n", "no video URLs"),
    ("https://www.youtube.com/watch?v=aliceVid001\nhttps://www.youtube.com/watch?v=bad\n", "urls.txt:2: expected a video URL"),
    ("# speaker: A\nhttps://evil.example/watch?v=aliceVid001\n", "urls.txt:2: a video URL must be a YouTube URL"),
    ("#speaker:\nhttps://www.youtube.com/watch?v=aliceVid001\n", "urls.txt:1: '# speaker:' needs a name"),
])
def test_bad_urls_files(yt, tmp_path, capsys, text, message):
    with pytest.raises(SystemExit):
        cli.parse_config(["--out", str(tmp_path / "o"), "--urls", urls_file(tmp_path, text)])
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert yt.requests == []


@pytest.mark.parametrize("channel, lister, message", [
    ("@empty", "ytdlp", "no videos found"),
    ("@broken", "ytdlp", "no ytInitialData"),
    pytest.param("@broken", "browser", "no ytInitialData", marks=pytest.mark.slow),  # headless Chromium
    ("@private", "ytdlp", "robots.txt disallows"),
])
def test_unlistable_sources_exit_1_and_write_nothing(yt, tmp_path, capsys, channel, lister, message):
    out = tmp_path / "o"
    assert main(yt, out, "--channel", f"{yt.base}/{channel}", "--lister", lister) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m scrapers.youtube: error:") and message in err[-1]
    assert not out.exists()


def test_output_folder_of_another_licence_mode_is_refused(yt, tmp_path, capsys):
    out = tmp_path / "o"
    run_cli(yt, out, "--urls", urls_file(tmp_path, watch_urls("bobVideo001")))
    yt.reset()
    with pytest.raises(SystemExit) as exc:
        cli.parse_config(["--out", str(out), "--base-url", yt.base, "--channel", f"{yt.base}/@bob", "--license", "any"])
    assert exc.value.code == 2 and "holds a scrape with another config" in capsys.readouterr().err
    assert yt.requests == []


@pytest.mark.slow
def test_sigkill_mid_download_then_rerun_equals_uninterrupted_run(yt, tmp_path):
    f = urls_file(tmp_path, watch_urls("aliceVid001", "slowVideo01", "aliceVid002"))
    ref = tmp_path / "ref"
    run_cli(yt, ref, "--urls", f)
    yt.reset()
    yt.slow_delay = 0.1
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "scrapers.youtube", "--out", str(out), "--base-url", yt.base, *FAST, "--urls", f]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = out / "audio" / ALICE / "slowVideo01.webm.part"
    deadline = time.monotonic() + 60
    while not (part.exists() and part.stat().st_size > 4096):  # the slow stream is arriving
        assert proc.poll() is None and time.monotonic() < deadline, "the scraper ended before the slow download"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert [r["id"] for r in jsonl(out / "manifest.jsonl")] == ["youtube-aliceVid001"]
    yt.reset()
    yt.slow_delay = 0.0
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "manifest.jsonl").read_bytes() == (ref / "manifest.jsonl").read_bytes()  # bit-exact muxing
    assert len(jsonl(out / "manifest.jsonl")) == 3
    assert yt.paths("/media/") == ["/media/slowVideo01.webm", "/media/aliceVid002.webm"]  # not aliceVid001 again
    resumed = [r for r in yt.requests if r["path"] == "/media/slowVideo01.webm"][0]
    assert resumed["range"] and resumed["range"].startswith("bytes=") and resumed["range"] != "bytes=0-"
    assert not [p for p in out.rglob("*") if p.suffix in (".part", ".webm")]


def test_unsafe_names_never_become_paths(tmp_path):
    with pytest.raises(FetchError, match="unsafe_path"):
        scrape.audio_stem(str(tmp_path), pages.Video("../../etc/pa"))
    rel, stem = scrape.audio_stem(str(tmp_path), pages.Video("abcdefghijk", channel_id="../../../../etc"))
    assert rel == "audio/unknown-channel" and stem.startswith(str(tmp_path))
    assert scrape.speaker_of(pages.Video("abcdefghijk"), "../../root") == ("youtube:root", "../../root")
    assert scrape.speaker_of(pages.Video("abcdefghijk"), None) is None


def test_progress_lines_count_videos_and_bytes_off_a_terminal(yt, tmp_path, caplog):
    import logging

    f = urls_file(tmp_path, watch_urls("aliceVid001", "aliceVid002", "bobVideo001"))
    out = tmp_path / "o"
    cfg = cli.parse_config(["--out", str(out), "--base-url", yt.base, *[a for a in FAST if a != "--no-progress"],
                            "--urls", f])
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        scrape.run(cfg, echo=lambda s: None, note=lambda s: None)
    lines = [r.getMessage() for r in caplog.records if r.name == "pipelines.progress"]
    size = sum(r["bytes"] for r in jsonl(out / "manifest.jsonl"))
    assert [ln.split(" (")[0] for ln in lines] == ["download: 1/3 videos", "download: 2/3 videos",
                                                   "download: 3/3 videos"]
    assert f"{size / 1e6:.1f} MB" in lines[-1] and lines[-1].endswith("ETA 0:00:00")


def test_ytdlp_progress_hook_passes_on_each_files_new_bytes():
    heard = []
    hook = download.ProgressHook(heard.append)
    for d in ({"status": "downloading", "tmpfilename": "a.part", "downloaded_bytes": 100},
              {"status": "downloading", "tmpfilename": "a.part", "downloaded_bytes": 250},
              {"status": "error", "tmpfilename": "a.part", "downloaded_bytes": 900},
              {"status": "finished", "tmpfilename": "a.part", "downloaded_bytes": 300},
              {"status": "downloading", "tmpfilename": "b.part", "downloaded_bytes": 40}):
        hook(d)
    assert heard == [100, 150, 50, 40]


def test_the_early_audit_checks_each_download(yt, tmp_path, pitch_model):
    """--audit-model: every download gets an audit line (the builder's checks, here with the stand-in model).
    Bob's two readings are tones: one voice, too few to judge a mismatch, and narrowband (a flag, not a failure),
    so neither stops the channel."""
    out = tmp_path / "o"
    summary, _ = run_cli(yt, out, "--urls", urls_file(tmp_path, watch_urls("bobVideo001", "bobVideo002")),
                         "--audit-model", str(pitch_model))
    lines = {d["id"]: d for d in jsonl(out / "audit.jsonl")}
    assert sorted(lines) == ["youtube-bobVideo001", "youtube-bobVideo002"] and summary["downloaded"] == 2
    assert all(d["verdict"] == "flag" and d["reasons"] == ["narrowband"] and d["quality"]["bandwidth_hz"] < 5000
               and d["speaker"] == jsonl(out / "manifest.jsonl")[0]["speaker"] for d in lines.values())
