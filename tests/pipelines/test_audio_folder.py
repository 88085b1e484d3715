"""pipelines.audio_folder: a <speaker>/<files> folder read as manifest records."""
from __future__ import annotations

from pipelines.audio_folder import records_from_audio_dir


def test_speaker_folders_nested_files_and_skips(tmp_path):
    for rel in ("alice/a1.wav", "alice/day2/a2.MP3", "bob/b1.flac", "bob/notes.txt", ".hidden/x.wav",
                "bob/.cache.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    records, skipped = records_from_audio_dir(str(tmp_path))
    assert [(r.id, r.path, r.speaker, r.speaker_name, r.group, r.source) for r in records] == [
        ("local-alice-a1.wav", "alice/a1.wav", "local:alice", "alice", "alice", "local"),
        ("local-alice-day2_a2.MP3", "alice/day2/a2.MP3", "local:alice", "alice", "alice", "local"),
        ("local-bob-b1.flac", "bob/b1.flac", "local:bob", "bob", "bob", "local"),
    ]
    assert [(s.path, s.reason) for s in skipped] == [(".hidden", "hidden"), ("bob/.cache.wav", "hidden"),
                                                     ("bob/notes.txt", "not_audio")]


def test_a_listing_can_come_from_elsewhere():
    listing = ["carol/c.wav", "carol/sub/d.opus"]
    records, skipped = records_from_audio_dir("gs://b/corpus/", lambda _root: listing)
    assert [r.path for r in records] == listing and not skipped


def test_a_file_without_speaker_folder_and_an_id_clash_are_skips_with_reasons(tmp_path):
    for rel in ("top.wav", "ann/a b.wav", "ann/a_b.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    records, skipped = records_from_audio_dir(str(tmp_path))
    assert [r.path for r in records] == ["ann/a b.wav"]
    assert [(s.path, s.reason) for s in skipped] == [("ann/a_b.wav", "duplicate_id"), ("top.wav", "no_speaker_folder")]
