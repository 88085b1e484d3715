"""The acoustic audit: its numeric checks on known embeddings, and the builder's stage end to end with a
stand-in audit model (tests/conftest.py `pitch_model`: the shape of the low-frequency spectrum, which tells the
tests' synthetic voices apart by their pitch). Figures on real speech: benchmarks.audit."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines import audit
from tests.conftest import build, make_corpus, read_split, utterance

CHECKS = audit.SpeakerChecks()


def cluster(center: np.ndarray, n: int, spread: float, rng) -> np.ndarray:
    return audit.unit(center + spread * rng.standard_normal((n, center.size)))


def test_windows_cover_the_speech_within_the_budget():
    w = CHECKS.window_samples
    assert list(audit.window_starts(w // 2, w, CHECKS)) == [0]  # shorter than a window: the whole speech
    for seconds in (2, 10, 60, 600, 6000):
        n = seconds * 16000
        starts = audit.window_starts(n, w, CHECKS)
        if n <= w:  # shorter than a window: the whole speech
            assert list(starts) == [0]
            continue
        if len(starts) == 1:  # room for one window: the middle of the speech
            assert list(starts) == [(n - w) // 2] and n < 2 * w
            continue
        assert starts[0] == 0 and starts[-1] == n - w and np.all(np.diff(starts) > 0)
        assert len(starts) <= CHECKS.max_windows
        # the coverage bound decides, but a recording gets min_windows when half-overlapping windows allow them
        assert len(starts) * w <= max(CHECKS.coverage * n + w, CHECKS.min_windows * w)
        assert len(starts) >= min(CHECKS.min_windows, 2 * (n // w) - 1)
    assert len(audit.window_starts(6000 * 16000, w, CHECKS)) == CHECKS.max_windows


def test_two_voices_are_found_and_one_voice_is_not():
    rng = np.random.default_rng(0)
    a, b = audit.unit(rng.standard_normal(32)), audit.unit(rng.standard_normal(32))
    one = cluster(a, 40, 0.14, rng)  # one noisy voice: windows alike (cosine ~0.6) but not equal
    two = np.concatenate([cluster(a, 24, 0.14, rng), cluster(b, 16, 0.14, rng)])
    small = np.concatenate([cluster(a, 36, 0.14, rng), cluster(b, 4, 0.14, rng)])  # 10 %: below the fraction
    assert audit.count_voices(one, CHECKS).voices == 1
    found = audit.count_voices(two, CHECKS)
    assert found.voices == 2 and found.second_voice_fraction == pytest.approx(0.4) and found.cross_similarity < 0.3
    assert audit.count_voices(small, CHECKS).voices == 1
    assert audit.count_voices(two[:3], CHECKS).voices == 1  # too few windows to tell
    labels = audit.two_means(two)
    assert len(set(labels[:24])) == 1 and len(set(labels[24:])) == 1 and labels[0] != labels[-1]


def test_a_misfiled_recording_is_far_from_its_speakers_reference_and_the_others_are_not():
    rng = np.random.default_rng(1)
    a, b = audit.unit(rng.standard_normal(32)), audit.unit(rng.standard_normal(32))
    own = cluster(a, 4, 0.1, rng)
    embs = np.concatenate([own, cluster(b, 1, 0.1, rng)])
    ids = ["r0", "r1", "r2", "r3", "x"]
    sims = audit.speaker_mismatches(ids, embs, CHECKS)
    assert audit.speaker_verdicts(sims, CHECKS) == ["x"]
    assert min(sims[i] for i in ids[:4]) > 0.7 and sims["x"] < 0.3
    assert audit.speaker_mismatches(ids[:2], embs[:2], CHECKS) == {"r0": None, "r1": None}  # too few to judge
    # the reference is the dominant voice: one outlier among four does not pull it
    ref = audit.trimmed_reference(embs)
    assert ref @ a > audit.unit(embs.mean(axis=0)) @ a


def test_reencoded_copies_under_another_speaker_are_duplicates():
    rng = np.random.default_rng(2)
    e = audit.unit(rng.standard_normal((4, 16)))
    jitter = lambda x: audit.unit(x + 0.01 * rng.standard_normal(x.shape))  # noqa: E731 (a re-encoding)
    fp = e[1:3]
    recs = [("a", "s1", 160000, e[0], fp), ("b", "s2", 160100, jitter(e[0]), jitter(fp)),
            ("c", "s3", 160000, e[3], fp),  # another voice
            ("d", "s1", 160000, jitter(e[0]), jitter(fp))]  # d: same speaker as a: not a cross-speaker duplicate
    assert audit.near_duplicates(recs) == {"b": "a"}
    assert audit.near_duplicates([recs[0], ("b", "s2", 200000, e[0], fp)]) == {}  # another length
    # the same voice, another recording: the voice alike, the first and last words not
    assert audit.near_duplicates([recs[0], ("b", "s2", 160000, e[0], e[2:4])]) == {}


def test_verdicts_policies_and_settings():
    assert audit.verdict([]) == "keep" and audit.verdict(["narrowband"]) == "flag"
    assert audit.verdict(["narrowband", "multi_speaker"]) == "reject"
    cfg = audit.AuditConfig(model="m", policy="flag", checks=audit.SpeakerChecks(cross_similarity=0.25))
    assert audit.AuditConfig.from_json(cfg.to_json()) == cfg
    assert audit.AuditConfig.from_json({}).policy == "off"  # datasets built before the audit
    with pytest.raises(ValueError, match="--audit-policy"):
        audit.AuditConfig(policy="drop").validate()
    with pytest.raises(ValueError, match="--audit-min-recordings"):
        audit.SpeakerChecks(min_recordings=1).validate()


# ---------------------------------------------------------------------------------------------
# The builder's stage, end to end
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def audited_corpus(tmp_path_factory):
    """3 speakers x 4 recordings, plus a recording of s2 filed under s0 and one of s0 and s1 together (50/50)."""
    from pipelines.decode import write_wav

    root = tmp_path_factory.mktemp("audit")
    pattern = (2.5, 0.8, 2.5, 0.3, 2.0)
    (root / "audio").mkdir()
    write_wav(root / "audio/misfiled.wav", utterance(200, (3.5, 0.8, 2.5), seed=900))  # not a copy: longer
    write_wav(root / "audio/two.wav", np.concatenate([utterance(110, pattern, seed=901),
                                                      utterance(155, pattern, seed=902)]))
    extra = [{"id": "test-misfiled", "path": "audio/misfiled.wav", "speaker": "test:s0", "source": "test"},
             {"id": "test-two-voices", "path": "audio/two.wav", "speaker": "test:s0", "source": "test"}]
    return make_corpus(root, speakers=3, recordings=4, pattern=pattern, extra=extra)


def audit_lines(out):
    return {d["id"]: d for d in map(json.loads, (out / "audit.jsonl").read_text().splitlines())}


def test_the_builder_rejects_a_misfiled_and_a_two_voice_recording(audited_corpus, pitch_model, tmp_path):
    out = tmp_path / "ds"
    meta = build(audited_corpus, out, "--audit-model", str(pitch_model), "--split-fractions", "1,0,0")
    lines = audit_lines(out)
    assert len(lines) == 14
    assert lines["test-misfiled"]["verdict"] == "reject" and lines["test-misfiled"]["reasons"] == ["speaker_mismatch"]
    assert lines["test-two-voices"]["reasons"] == ["multi_speaker"]
    assert lines["test-two-voices"]["voices"] == 2 and lines["test-two-voices"]["second_voice_fraction"] >= 0.3
    kept = [i for i, d in lines.items() if d["verdict"] == "keep"]
    assert len(kept) == 12 and all(lines[i]["speaker_similarity"] > 0.5 for i in kept)
    errors = [json.loads(x) for x in (out / "errors" / "audit.jsonl").read_text().splitlines()]
    assert sorted((e["id"], e["reason"]) for e in errors) == [("test-misfiled", "speaker_mismatch"),
                                                               ("test-two-voices", "multi_speaker")]
    assert {ex["recording"] for ex in read_split(out, "train")} == set(kept)  # the shards hold only kept audio
    assert meta.audit.ran and meta.audit.speaker_checks and meta.audit.audit_model_id == "pitch-stand-in"
    assert meta.audit.verdicts == {"keep": 12, "reject": 2} and meta.counts.add_up
    stored = json.loads((out / "dataset.json").read_text())["config"]["audit"]
    assert stored["model"] == str(pitch_model) and stored["speaker_checks"] == CHECKS.to_json()


def test_policy_flag_keeps_them_and_marks_them(audited_corpus, pitch_model, tmp_path):
    out = tmp_path / "ds"
    meta = build(audited_corpus, out, "--audit-model", str(pitch_model), "--audit-policy", "flag",
                 "--split-fractions", "1,0,0")
    assert audit_lines(out)["test-misfiled"]["verdict"] == "reject"
    assert not (out / "errors" / "audit.jsonl").exists()
    assert {"test-misfiled", "test-two-voices"} <= {ex["recording"] for ex in read_split(out, "train")}
    assert meta.counts.recordings_with_segments == 14


def test_without_a_model_only_duplicates_are_checked_and_off_writes_nothing(audited_corpus, tmp_path):
    meta = build(audited_corpus, tmp_path / "a")
    lines = audit_lines(tmp_path / "a")
    assert len(lines) == 14 and all("speaker_similarity" not in d for d in lines.values())
    assert meta.audit.ran and not meta.audit.speaker_checks
    meta = build(audited_corpus, tmp_path / "b", "--audit-policy", "off")
    assert not (tmp_path / "b" / "audit.jsonl").exists() and not meta.audit.ran


def test_a_bad_audit_model_fails_before_any_work(audited_corpus, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        build(audited_corpus, tmp_path / "ds", "--audit-model", str(tmp_path / "nowhere"))
    assert exc.value.code == 2
    assert "--audit-model" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()


def test_the_scrapers_gate_stops_a_speaker_whose_first_downloads_fail(pitch_model, tmp_path):
    from pipelines.decode import write_wav
    from pipelines.speaker_gate import SpeakerGate

    pattern = (2.5, 0.8, 2.5, 0.3, 2.0)
    gate = SpeakerGate(str(pitch_model), first=3, max_failures=2)
    for k, f0s in enumerate([(110,), (110,), (110,)]):  # a good reader: three clean recordings of one voice
        path = tmp_path / f"good{k}.wav"
        write_wav(path, utterance(f0s[0], pattern, seed=k))
        line = gate.check("librivox:1", f"good{k}", str(path))
    assert line["verdict"] == "keep" and gate.stopped("librivox:1") is None
    for k in range(3):  # a channel of two-voice recordings (interviews)
        path = tmp_path / f"two{k}.wav"
        write_wav(path, np.concatenate([utterance(110, pattern, seed=10 + k), utterance(200, pattern, seed=20 + k)]))
        line = gate.check("youtube:UCx", f"two{k}", str(path))
        assert line["reasons"] == ["multi_speaker"]
        assert (gate.stopped("youtube:UCx") is None) == (k < 2)  # judged after the first three
    assert "3 of its first 3 downloads failed the acoustic audit (multi_speaker)" in gate.stopped("youtube:UCx")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    assert gate.check("librivox:2", "bad", str(bad))["verdict"] == "reject"
    with pytest.raises(ValueError, match="--audit-max-failures"):
        SpeakerGate(str(pitch_model), first=2, max_failures=3)


def test_the_quality_gates_reject_noise_and_clipping_and_flag_8_khz_audio(tmp_path):
    """No audit model: the quality gates alone. A voice under white noise at 0 dB SNR and one clipped +20 dB are
    rejected; the same voice recorded at 8 kHz is kept and flagged narrowband."""
    from benchmarks.audit_sets import clip
    from pipelines.decode import write_wav

    pattern = (2.5, 0.8, 2.5, 0.3, 2.0)
    clean = utterance(150, pattern, seed=7).astype(np.float64) / 32768
    clean += np.random.default_rng(8).standard_normal(clean.size) * 10 ** (-70 / 20)  # broadband floor, -70 dB
    rng = np.random.default_rng(9)
    noisy = clean + rng.standard_normal(clean.size) * np.sqrt(np.mean(clean ** 2))
    root = tmp_path / "c"
    (root / "audio").mkdir(parents=True)
    extra = []
    as16 = lambda x: np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)  # noqa: E731
    for name, x, rate in (("clean", as16(clean), 16000), ("noisy", as16(noisy), 16000),
                          ("clipped", clip(as16(clean), 20.0), 16000), ("phone", as16(clean)[::2], 8000)):
        write_wav(root / f"audio/{name}.wav", x, rate)
        extra.append({"id": f"q-{name}", "path": f"audio/{name}.wav", "speaker": f"test:{name}", "source": "test"})
    manifest = make_corpus(root, speakers=1, recordings=1, pattern=pattern, extra=extra)
    out = tmp_path / "ds"
    meta = build(manifest, out, "--split-fractions", "1,0,0")
    lines = audit_lines(out)
    assert lines["q-clean"]["verdict"] == "keep" and lines["q-clean"]["quality"]["snr_db"] > 30
    assert lines["q-noisy"]["reasons"] == ["low_snr"] and lines["q-noisy"]["quality"]["snr_db"] < 10
    assert lines["q-clipped"]["reasons"] == ["clipped"] and lines["q-clipped"]["verdict"] == "reject"
    assert lines["q-phone"]["reasons"] == ["narrowband"] and lines["q-phone"]["verdict"] == "flag"
    assert lines["q-phone"]["quality"]["bandwidth_hz"] < 4500 < lines["q-clean"]["quality"]["bandwidth_hz"]
    errors = {e["id"]: e for e in map(json.loads, (out / "errors" / "audit.jsonl").read_text().splitlines())}
    assert sorted(errors) == ["q-clipped", "q-noisy"] and "snr db" in errors["q-noisy"]["message"]
    assert {ex["recording"] for ex in read_split(out, "train")} == {"test-s0-r0", "q-clean", "q-phone"}
    assert meta.audit.reasons == {"clipped": 1, "low_snr": 1, "narrowband": 1}
    stored = json.loads((out / "dataset.json").read_text())["config"]["audit"]["quality_gates"]
    assert stored == {"max_clipped_fraction": 0.001, "min_bandwidth_hz": 5000.0, "min_snr_db": 10.0,
                      "min_speech_ratio": 0.25}
