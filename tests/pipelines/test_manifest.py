"""pipelines.manifest: the one definition of a manifest line (fields, defaults, validation, JSON)."""
from __future__ import annotations

import json

import pytest

from pipelines.manifest import ManifestError, ManifestRecord, parse_line, resolve_path, split_speaker, to_jsonl


def line(**fields) -> str:
    return json.dumps({"id": "librivox-52-003", "path": "audio/9625/52-003.mp3", "speaker": "librivox:9625",
                       **fields})


def test_defaults_come_from_the_id_and_the_speaker_key():
    r = parse_line(line(), "/corpus")
    assert r.path == "/corpus/audio/9625/52-003.mp3"
    assert (r.recording, r.speaker_name, r.source, r.group, r.license) == ("librivox-52-003", "9625", "librivox", "", "")
    bare = parse_line(json.dumps({"id": "a", "path": "a.wav", "speaker": "alice"}), "/c")
    assert (bare.source, bare.speaker_name) == ("local", "alice")
    assert split_speaker("youtube:UC:x") == ("youtube", "UC:x")


def test_given_fields_are_kept_and_numbers_are_typed():
    r = parse_line(line(speaker_name="Kara Shallenberg", recording="book-52", duration_s="61.5", bytes=12,
                        sha256="AB" * 32, license="public-domain", book_id=52), "/c")
    assert r.speaker_name == "Kara Shallenberg" and r.recording == "book-52" and r.license == "public-domain"
    assert r.duration_s == 61.5 and r.bytes == 12 and r.sha256 == "ab" * 32
    assert r.extra == {"book_id": 52}  # a source's own fields travel along, untouched


def test_round_trip_through_json():
    r = ManifestRecord(id="youtube-abc", path="audio/abc.opus", speaker="youtube:UC1", speaker_name="Chan",
                       url="https://youtu.be/abc", duration_s=12.0, extra={"channel": "Chan"})
    again = ManifestRecord.from_json(json.loads(r.to_line()))
    assert again == r and again.extra == {"channel": "Chan"}
    assert list(r.to_json())[:3] == ["id", "path", "speaker"]  # contract fields first
    assert "group" not in r.to_json()  # empty fields are left out
    assert to_jsonl([r, r]).count("\n") == 2


@pytest.mark.parametrize("text, reason", [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ("[" * 100000, "invalid_json"),
    (json.dumps({"id": "a", "path": "a.wav"}), "missing_field"),
    (json.dumps({"id": "", "path": "a.wav", "speaker": "s"}), "missing_field"),
    (json.dumps({"id": 3, "path": "a.wav", "speaker": "s"}), "missing_field"),
    (line(id="a\tb"), "invalid_field"),
    (line(id=" a"), "invalid_field"),
    (line(speaker="librivox:96\n25"), "invalid_field"),
    (line(recording="r\x00"), "invalid_field"),
    (line(path="foo://bucket/a.mp3"), "unsupported_path"),
    (line(path="http://example.com/a.mp3"), "unsupported_path"),
    (line(path="a\nb.mp3"), "invalid_field"),
    (line(duration_s="oops"), "invalid_field"),
    (line(duration_s=float("nan")), "invalid_field"),
    (line(duration_s=-1), "invalid_field"),
    (line(duration_s=True), "invalid_field"),
    (line(bytes=12.5), "invalid_field"),
    (line(sha256="xyz"), "invalid_field"),
    (line(speaker_name={"a": 1}), "invalid_field"),
])
def test_bad_lines_are_errors_with_a_reason(text, reason):
    with pytest.raises(ManifestError) as exc:
        parse_line(text, "/c")
    assert exc.value.reason == reason and exc.value.message


def test_free_text_loses_control_characters_but_keys_never_change():
    r = parse_line(line(speaker_name="Kara\tShallenberg\n", title="A\r\nB"), "/c")
    assert r.speaker_name == "Kara Shallenberg " and r.title == "A  B"


def test_remote_and_absolute_paths_are_not_rebased():
    assert resolve_path("gs://b/a.mp3", "/corpus") == "gs://b/a.mp3"
    assert resolve_path("/abs/a.mp3", "/corpus") == "/abs/a.mp3"
    assert resolve_path("a.mp3", "gs://b/corpus") == "gs://b/corpus/a.mp3"
    assert parse_line(line(path="s3://b/x.mp3"), "/c").path == "s3://b/x.mp3"
