"""pipelines.finalize: the split audit proves the split property from the written shards; speakers.tsv; the
manifest copy."""
from __future__ import annotations

import json

from pipelines.finalize import speakers_tsv, split_audit


def shard(split, recordings):
    """Shard statistics as the merge writes them: recording id -> [speaker, recording key, segments, samples]."""
    return {"split": split, "recordings": recordings}


PLANNED = [{"id": "r1", "recording": "r1", "group": "book1"}, {"id": "r2", "recording": "r2", "group": "book1"},
           {"id": "r3", "recording": "r3", "group": ""}]


def test_a_clean_recording_split_holds():
    stats = [shard("train", {"r1": ["a", "r1", 3, 100], "r3": ["b", "r3", 1, 10]}),
             shard("test", {"r2": ["a", "r2", 2, 50]})]
    audit = split_audit("recording", stats, PLANNED)
    assert audit.holds and audit.recordings == 3 and audit.speakers == 2
    assert audit.groups_in_more_than_one_split == 1  # book1 spans train and test: reported, allowed here


def test_a_recording_in_two_splits_or_a_speaker_missing_from_train_is_a_violation():
    leaked = [shard("train", {"r1": ["a", "r1", 3, 100]}), shard("validation", {"r1": ["a", "r1", 1, 10]})]
    audit = split_audit("recording", leaked, PLANNED)
    assert not audit.holds and audit.recordings_in_more_than_one_split == 1
    assert audit.examples["recordings_in_more_than_one_split"] == ["r1"]
    no_train = [shard("train", {"r1": ["a", "r1", 3, 100]}), shard("test", {"r3": ["b", "r3", 1, 10]})]
    audit = split_audit("recording", no_train, PLANNED)
    assert not audit.holds and audit.examples["speakers_missing_from_train"] == ["b"]


def test_open_set_split_needs_disjoint_speakers():
    stats = [shard("train", {"r1": ["a", "r1", 3, 100]}), shard("test", {"r2": ["a", "r2", 2, 50]})]
    assert split_audit("recording", stats, PLANNED).holds
    audit = split_audit("speaker", stats, PLANNED)
    assert not audit.holds and audit.speakers_in_more_than_one_split == 1


def test_speakers_tsv_rows():
    text = speakers_tsv({"b": {"train": (2.0, 2)}, "a": {"train": (1.5, 3), "test": (0.5, 1)}},
                        {"a": "Ann\tLee", "b": "Bob"}, {"a": 0, "b": 1})
    rows = [line.split("\t") for line in text.splitlines()]
    assert rows[0][:3] == ["speaker", "name", "label"] and len(rows) == 3
    assert rows[1] == ["a", "Ann Lee", "0", "1.500", "3", "0.000", "0", "0.500", "1"]
    assert rows[2][:5] == ["b", "Bob", "1", "2.000", "2"]


def test_the_manifest_copy_is_the_manifests_bytes_decompressed(tmp_path):
    import gzip

    from pipelines.finalize import copy_manifest

    body = "".join(json.dumps({"id": f"r{i}", "path": "a.wav", "speaker": "s", "title": "é\u2028"},
                              ensure_ascii=False) + "\n" for i in range(3000)).encode("utf-8")
    (tmp_path / "m.jsonl").write_bytes(body)
    (tmp_path / "m.jsonl.gz").write_bytes(gzip.compress(body))
    for name in ("m.jsonl", "m.jsonl.gz"):
        copy_manifest(str(tmp_path / name), str(tmp_path / "copy.jsonl"))
        assert (tmp_path / "copy.jsonl").read_bytes() == body


def test_manifest_extras_of_the_kept_line_of_each_id(tmp_path):
    from pipelines.finalize import manifest_extras

    lines = ['{"id": "a", "path": "x", "speaker": "s", "channel": "First", "title": "t"}', "not json", "[1]",
             '{"id": "a", "path": "y", "speaker": "s", "channel": "Duplicate"}', '{"id": "b", "channel": "B"}', ""]
    (tmp_path / "m.jsonl").write_text("\n".join(lines))
    assert manifest_extras(str(tmp_path / "m.jsonl"), {"a", "c"}) == {"a": {"channel": "First"}}
