"""Parsing YouTube pages: the real saved pages (when present) and generated pages of the same shapes."""
from __future__ import annotations

import gzip
import json

import pytest

from scrapers.youtube import pages
from tests.scrapers.youtube.conftest import (ALICE, BOB, CAROL, CC, NAMES, alice_page, channel_data, grid_item,
                                             lockup_item, playlist_item, real_page, rich_item, static_page,
                                             watch_page)


def read_real(name: str) -> str:
    return gzip.open(real_page(name)).read().decode("utf-8")


def read_real_watch(video_id: str) -> str:
    return json.load(gzip.open(real_page(f"yt-video-{video_id}-html.json.gz")))["watch_html"]


# -- real pages ----------------------------------------------------------------------------------------------
def test_real_channel_videos_tab():
    listing = pages.parse_listing(read_real("channel-videos.html.gz"), "channel")
    assert len(listing.videos) == 30 and len({v.id for v in listing.videos}) == 30
    first = listing.videos[0]
    assert first.id == "t_xLpJo_35k" and first.title.startswith("Adobe After Effects (Basic Course for Beginners)")
    assert first.duration_s == 7 * 3600 + 33 * 60 + 13  # gridVideoRenderer: only the thumbnail overlay has it
    assert (listing.channel_id, listing.channel) == ("UCs6nmQViDpUw0nuIx9c_WvA", "ProgrammingKnowledge")
    assert all(v.channel_id == "UCs6nmQViDpUw0nuIx9c_WvA" and v.duration_s for v in listing.videos)
    assert listing.has_continuation  # more videos come by scrolling


def test_real_playlists():
    short = pages.parse_listing(read_real("playlist.html.gz"), "playlist")
    assert len(short.videos) == 12 and short.title == "Python Machine Learning Tutorials"
    v = short.videos[0]
    assert (v.id, v.title, v.duration_s) == ("ujTCoH21GlA", "Python Machine Learning Tutorial #1 - Introduction", 681.0)
    assert (v.channel_id, v.channel) == ("UC4JX40jDee_tINbkjycV4Sg", "Tech With Tim")
    assert not short.has_continuation
    long = pages.parse_listing(read_real("playlist_long.html.gz"), "playlist")
    assert len(long.videos) == 100 and long.has_continuation
    assert long.videos[0].id == "41qgdwd3zAg" and long.videos[0].duration_s == 813.0
    assert all(v.duration_s and pages.VIDEO_ID.match(v.id) for v in long.videos)
    owners = [v.channel_id for v in long.videos]
    assert owners.count("UCs6nmQViDpUw0nuIx9c_WvA") >= 90 and all(o and pages.CHANNEL_ID.match(o) for o in owners)


def test_real_watch_pages_details_and_licence():
    watch = pages.parse_watch_page(read_real_watch("2lAe1cqCOXo"), "watch")
    v = watch.video
    assert (v.id, v.duration_s, v.channel_id, v.channel) == ("2lAe1cqCOXo", 337.0, "UCBR8-60-B28hp2BmDPdntcQ", "YouTube")
    assert v.title == "YouTube Rewind 2019: For the Record | #YouTubeRewind" and v.upload_date == "2019-12-05"
    # The capture has an empty metadata-row container: no License row, i.e. YouTube's standard licence.
    assert v.license is None and watch.playability == "OK" and watch.formats
    live = pages.parse_watch_page(read_real_watch("5YceQ8YqYMc"), "watch")
    assert live.playability == "UNPLAYABLE" and "not available" in live.reason and live.formats == ()
    assert live.video.channel_id == "UC7E-LYc1wivk33iyt5bR5zQ" and live.video.license is None


def test_real_watch_page_is_not_a_listing():
    listing = pages.parse_listing(read_real_watch("2lAe1cqCOXo"), "watch")
    assert listing.videos == ()  # related videos are compactVideoRenderer, not listing items


# -- generated pages -----------------------------------------------------------------------------------------
def test_generated_shapes_rich_grid_playlist_lockup():
    rich = pages.parse_listing(static_page(channel_data(ALICE, [rich_item("aliceVid001"), rich_item("aliceVid002")],
                                                         True)), "u")
    assert [v.id for v in rich.videos] == ["aliceVid001", "aliceVid002"]
    assert rich.videos[0].title == "Lecture 1: Tides" and rich.videos[0].duration_s == 4.0
    assert rich.videos[0].channel_id == ALICE and rich.videos[0].channel == NAMES[ALICE] and rich.has_continuation
    grid = pages.parse_listing(static_page(channel_data(BOB, [grid_item("bobVideo001")], False)), "u")
    assert grid.videos[0].duration_s == 4.0 and grid.videos[0].channel_id == BOB and not grid.has_continuation
    plist = pages.parse_listing(static_page({"x": [playlist_item("carolVid001"), playlist_item("bobVideo001")]},
                                            style="window"), "u")
    assert [(v.id, v.channel_id) for v in plist.videos] == [("carolVid001", CAROL), ("bobVideo001", BOB)]
    lock = pages.parse_listing(static_page({"a": {"b": [lockup_item("carolVid001"), {"lockupViewModel": {
        "contentId": "PLnotavideo", "contentType": "LOCKUP_CONTENT_TYPE_PLAYLIST"}}]}}), "u")
    assert [(v.id, v.title, v.duration_s, v.channel_id, v.channel) for v in lock.videos] == [
        ("carolVid001", "Talk on kelp", 4.0, CAROL, NAMES[CAROL])]


def test_accessibility_only_duration_and_bad_ids():
    data = {"items": [
        {"videoRenderer": {"videoId": "abcdefghijk", "title": {"simpleText": "T"}, "lengthText": {
            "accessibility": {"accessibilityData": {"label": "1 hour, 2 minutes, 3 seconds"}}}}},
        {"videoRenderer": {"videoId": "../../etc/x", "title": {"simpleText": "bad"}}},
        {"videoRenderer": {"videoId": "abcdefghijk", "title": {"simpleText": "dup"}}},
        {"videoRenderer": {"videoId": "liveliveliv", "thumbnailOverlays": [
            {"thumbnailOverlayTimeStatusRenderer": {"text": {"simpleText": "LIVE"}, "style": "LIVE"}}]}}]}
    videos = pages.parse_listing(static_page(data), "u").videos
    assert [(v.id, v.duration_s, v.live) for v in videos] == [("abcdefghijk", 3723.0, False),
                                                              ("liveliveliv", None, True)]
    assert videos[0].title == "T"


def test_page_without_initial_data_names_what_was_expected():
    with pytest.raises(pages.PageError) as exc:
        pages.parse_listing("<html><body>consent.youtube.com: Before you continue</body></html>", "http://x/@a/videos")
    assert exc.value.reason == "no_ytInitialData" and "ytInitialData" in exc.value.message
    assert "http://x/@a/videos" in exc.value.message
    with pytest.raises(pages.PageError, match="ytInitialPlayerResponse"):
        pages.parse_watch_page("<html></html>", "http://x/watch?v=abcdefghijk")
    assert pages.extract_json_var("var ytInitialData = {broken", "ytInitialData") is None


@pytest.mark.parametrize("text, seconds", [("12:34", 754.0), ("1:02:03", 3723.0), ("45", 45.0),
                                           ("7 hours, 33 minutes, 13 seconds", 27193.0), ("2 minutes", 120.0),
                                           ("LIVE", None), ("", None), (None, None)])
def test_parse_duration(text, seconds):
    assert pages.parse_duration(text) == seconds


def test_generated_watch_page_licence_and_streams():
    cc = pages.parse_watch_page(watch_page("aliceVid001", "http://h", {"aliceVid001": 99}), "u")
    assert cc.video.license == CC and cc.video.upload_date == "2021-03-04" and cc.video.channel_id == ALICE
    assert cc.formats[0]["url"] == "http://h/media/aliceVid001.webm" and cc.formats[0]["contentLength"] == "99"
    standard = pages.parse_watch_page(watch_page("aliceVid004", "http://h", {}), "u")
    assert standard.video.license is None
    bot = pages.parse_watch_page(watch_page("botCheck001", "http://h", {}), "u")
    assert bot.playability == "LOGIN_REQUIRED" and "not a bot" in bot.reason


def test_dom_items_and_merge_keep_scrolled_items_in_page_order():
    html = alice_page().replace("</div>", "".join(f'<ytd-rich-item-renderer><a id="video-title-link" '
                                                  f'href="/watch?v={v}&amp;t=3s" title="Scrolled {v}">x</a>'
                                                  + (f'<a href="/channel/{BOB}">Bob Reads</a>' if v.startswith("bob") else "")
                                                  + '</ytd-rich-item-renderer>'
                                                  for v in ("aliceVid004", "bobVideo001")) + "</div>", 1)
    dom = pages.parse_dom_items(html)
    assert [v.id for v in dom] == ["aliceVid001", "aliceVid002", "aliceVid003", "aliceVid004", "bobVideo001"]
    assert dom[0].duration_s == 4.0 and dom[3].title == "Scrolled aliceVid004" and dom[4].channel_id == BOB
    merged = pages.merge_listing(pages.parse_listing(html, "u"), dom, limit=4)
    assert [v.id for v in merged.videos] == ["aliceVid001", "aliceVid002", "aliceVid003", "aliceVid004"]
    assert merged.videos[0].title == "Lecture 1: Tides"  # ytInitialData wins where it has the item
    assert merged.videos[3].channel_id == ALICE  # a DOM-only item on a channel page belongs to the channel


@pytest.mark.parametrize("href, vid", [("/watch?v=abcdefghijk", "abcdefghijk"),
                                       ("https://www.youtube.com/watch?feature=x&v=abc-efg_ijk", "abc-efg_ijk"),
                                       ("https://youtu.be/abcdefghijk?t=1", "abcdefghijk"),
                                       ("/shorts/abcdefghijk", "abcdefghijk"), ("/watch?v=short", None),
                                       ("/watch?v=../../etc/pa", None), ("/@handle", None), (None, None)])
def test_video_id_from_href(href, vid):
    assert pages.video_id_from_href(href) == vid
