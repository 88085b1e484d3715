"""The acoustic audit's speaker checks: one voice per recording, the right voice for its speaker.

Plain numpy over speaker embeddings (no Beam, no TensorFlow; pipelines.embedding runs the model):

- **windows**: which stretches of a recording's speech are embedded. Evenly spaced windows covering at most
  `coverage` of the speech (the cost bound: the embedder is ~100x dearer per second than decoding), at least
  `min_windows` when the speech allows, at most `max_windows`;
- **one voice** (`count_voices`): the window embeddings split in two by spherical 2-means; when the smaller
  group holds at least `min_voice_fraction` of the windows and windows across the groups are on average less
  alike than `cross_similarity`, the recording is `multi_speaker` (an agglomerative clustering with a distance
  threshold was measured first and did worse on short recordings: README, The acoustic audit);
- **quality** (pipelines.quality, measured in the decoding pass): `low_snr`, `low_speech_ratio`, `narrowband`,
  `clipped` against `QualityGates`;
- **the right voice** (`speaker_references`): a speaker's reference is the dominant voice over all its
  recordings, a trimmed mean (recordings farther than the median from the first mean are dropped, then the mean is
  taken again), so a minority of misfiled recordings cannot pull it; a recording whose similarity to the
  reference of the *other* recordings of its speaker (leave-one-out) is below `min_speaker_similarity` is
  `speaker_mismatch`. It needs `min_recordings` recordings of the speaker (with two, which one is wrong is
  undecidable).

The thresholds are cosine similarities/distances in the export's embedding space, calibrated with
`python -m benchmarks.audit` (README "Acoustic audit"); they are recorded in dataset.json.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from pipelines.quality import QualityGates
from pipelines.schema import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class SpeakerChecks:
    """Settings of the embedding checks (the `--audit-*` flags)."""

    window_s: float = 3.0
    coverage: float = 0.125  # at most this fraction of a recording's speech is embedded
    min_windows: int = 6  # ... but at least this many windows when the speech allows (short recordings)
    max_windows: int = 120
    cross_similarity: float = 0.5  # windows of two voices are less alike than this on average (cosine)
    min_voice_fraction: float = 0.15  # a second voice counts when it holds this fraction of the windows
    min_speaker_similarity: float = 0.35  # cosine to the speaker's reference below this: speaker_mismatch
    min_recordings: int = 3  # the reference needs this many recordings of a speaker

    def validate(self) -> None:
        if not 0.2 <= self.window_s <= 10:
            raise ValueError("--audit-window-seconds must be between 0.2 and 10")
        if not 0 < self.coverage <= 1:
            raise ValueError("--audit-coverage must be in (0, 1]")
        if self.min_windows < 1 or self.max_windows < self.min_windows:
            raise ValueError("--audit-min-windows must be >= 1 and <= --audit-max-windows")
        if not -1 < self.cross_similarity < 1:
            raise ValueError("--audit-cross-similarity must be in (-1, 1) (cosine)")
        if not 0 < self.min_voice_fraction <= 0.5:
            raise ValueError("--audit-min-voice-fraction must be in (0, 0.5]")
        if not -1 <= self.min_speaker_similarity < 1:
            raise ValueError("--audit-min-speaker-similarity must be in [-1, 1) (cosine)")
        if self.min_recordings < 2:
            raise ValueError("--audit-min-recordings must be >= 2")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * SAMPLE_RATE))

    def to_json(self) -> Dict:
        return {"window_seconds": self.window_s, "coverage": self.coverage, "min_windows": self.min_windows,
                "max_windows": self.max_windows, "cross_similarity": self.cross_similarity,
                "min_voice_fraction": self.min_voice_fraction,
                "min_speaker_similarity": self.min_speaker_similarity, "min_recordings": self.min_recordings}

    @classmethod
    def from_json(cls, data: Mapping) -> "SpeakerChecks":
        d = cls()
        return cls(window_s=float(data.get("window_seconds", d.window_s)),
                   coverage=float(data.get("coverage", d.coverage)),
                   min_windows=int(data.get("min_windows", d.min_windows)),
                   max_windows=int(data.get("max_windows", d.max_windows)),
                   cross_similarity=float(data.get("cross_similarity", d.cross_similarity)),
                   min_voice_fraction=float(data.get("min_voice_fraction", d.min_voice_fraction)),
                   min_speaker_similarity=float(data.get("min_speaker_similarity", d.min_speaker_similarity)),
                   min_recordings=int(data.get("min_recordings", d.min_recordings)))


def window_starts(speech_samples: int, window_samples: int, checks: SpeakerChecks) -> np.ndarray:
    """Start samples of the windows of `window_samples` to embed, evenly spread over the speech (one window, the
    whole speech, when it is shorter than a window)."""
    w = window_samples
    if speech_samples <= w:
        return np.zeros(1, np.int64)
    fit = speech_samples // w  # windows that fit without overlap
    budget = math.floor(checks.coverage * speech_samples / w)
    n = int(min(checks.max_windows, max(budget, min(checks.min_windows, 2 * fit - 1)), 2 * fit - 1))
    n = max(n, 1)
    if n == 1:
        return np.array([(speech_samples - w) // 2], np.int64)
    return np.round(np.linspace(0, speech_samples - w, n)).astype(np.int64)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def two_means(embeddings: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Labels 0/1 of unit embeddings split into two groups by spherical k-means, started deterministically from
    the window least like the mean and the window least like that one (the two most distant voices, if two)."""
    e = unit(embeddings)
    mean = unit(e.mean(axis=0))
    first = e[int(np.argmin(e @ mean))]
    centers = np.stack([first, e[int(np.argmin(e @ first))]])
    labels = np.zeros(len(e), np.int64)
    for _ in range(iterations):
        new = np.argmax(e @ centers.T, axis=1)
        if new.min() == new.max():
            return new * 0
        if np.array_equal(new, labels):
            break
        labels = new
        centers = np.stack([unit(e[labels == k].mean(axis=0)) for k in (0, 1)])
    return labels


@dataclasses.dataclass(frozen=True)
class VoiceCount:
    """What splitting one recording's windows into two groups found."""

    windows: int
    voices: int  # 2 when the groups are two voices (see count_voices), else 1
    second_voice_fraction: float  # share of the windows in the smaller group
    cross_similarity: float  # mean cosine between windows of the two groups (1.0 with one group)

    def to_json(self) -> Dict:
        return {"windows": self.windows, "voices": self.voices,
                "second_voice_fraction": round(self.second_voice_fraction, 4),
                "cross_similarity": round(self.cross_similarity, 4)}


def count_voices(window_embeddings: np.ndarray, checks: SpeakerChecks) -> VoiceCount:
    """Two voices when the windows split (two_means) into groups whose smaller one holds at least
    `min_voice_fraction` of them and whose windows are, on average, less alike across the groups than
    `cross_similarity` (a cosine near the export's same/different decision for single windows). Three or more
    voices split into two groups the same way. Fewer than 4 windows: not tested (one voice)."""
    n = len(window_embeddings)
    if n < 4:
        return VoiceCount(n, 1 if n else 0, 0.0, 1.0)
    e = unit(window_embeddings)
    labels = two_means(e)
    minor = float(min(np.mean(labels == 0), np.mean(labels == 1)))
    if minor == 0.0:
        return VoiceCount(n, 1, 0.0, 1.0)
    cross = float((e[labels == 0] @ e[labels == 1].T).mean())
    two = minor >= checks.min_voice_fraction - 1e-9 and cross < checks.cross_similarity
    return VoiceCount(n, 2 if two else 1, minor, cross)


def fingerprint(window_embeddings: np.ndarray) -> np.ndarray:
    """The embeddings of the first and the last window: where two copies of the same audio are alike and two
    recordings of the same voice are not (near_duplicates)."""
    return np.stack([window_embeddings[0], window_embeddings[-1]])


def recording_embedding(window_embeddings: np.ndarray) -> np.ndarray:
    """One unit vector for a recording: the normalised mean of its unit window embeddings."""
    return unit(unit(window_embeddings).mean(axis=0))


def trimmed_reference(embeddings: np.ndarray) -> np.ndarray:
    """A speaker's dominant voice: the mean of its recordings' embeddings after dropping those less similar to
    the plain mean than the median is (so misfiled recordings, a minority, do not pull it)."""
    e = unit(embeddings)
    first = unit(e.mean(axis=0))
    if len(e) < 3:
        return first
    sims = e @ first
    keep = sims >= np.median(sims)
    return unit(e[keep].mean(axis=0))


def speaker_similarities(embeddings: np.ndarray) -> np.ndarray:
    """Per recording of one speaker: cosine similarity to the trimmed reference of the speaker's *other*
    recordings (leave one out: a recording never vouches for itself)."""
    e = unit(embeddings)
    n = len(e)
    out = np.empty(n)
    for i in range(n):
        others = np.delete(e, i, axis=0)
        out[i] = float(e[i] @ trimmed_reference(others))
    return out


def speaker_mismatches(ids: Sequence[str], embeddings: np.ndarray, checks: SpeakerChecks
                       ) -> Dict[str, Optional[float]]:
    """Per recording id of one speaker: its similarity to the speaker's reference, or None when the speaker has
    fewer than `min_recordings` recordings (not checked)."""
    if len(ids) < checks.min_recordings:
        return {i: None for i in ids}
    sims = speaker_similarities(np.asarray(embeddings))
    return {i: float(s) for i, s in zip(ids, sims)}


def speaker_verdicts(similarities: Mapping[str, Optional[float]], checks: SpeakerChecks) -> List[str]:
    """Recording ids below the speaker-similarity threshold."""
    return sorted(i for i, s in similarities.items() if s is not None and s < checks.min_speaker_similarity)


# ---------------------------------------------------------------------------------------------
# Verdicts: the codes, their severity, the policy
# ---------------------------------------------------------------------------------------------
AUDIT_POLICIES = ("reject", "flag", "off")
# a recording with one of these is `reject` (kept out of the shards under --audit-policy reject) ...
REJECT_REASONS = ("multi_speaker", "speaker_mismatch", "duplicate_audio", "low_snr", "clipped")
# ... with only these, `flag` (kept, marked in audit.jsonl): usable audio a user may want to filter
FLAG_REASONS = ("narrowband", "low_speech_ratio")
REASONS = REJECT_REASONS + FLAG_REASONS
QUALITY_MEASURE = {"low_snr": ("snr_db", " dB"), "low_speech_ratio": ("speech_ratio", ""),
                   "narrowband": ("bandwidth_hz", " Hz"), "clipped": ("clipped_fraction", "")}
NEAR_DUPLICATE_SIMILARITY = 0.95  # embeddings of re-encoded copies of the same audio, window by window
NEAR_DUPLICATE_DURATION = 0.005  # ... whose speech durations differ by at most 0.5 % (or 0.2 s)


def describe(line: Mapping) -> str:
    """One sentence for errors/audit.jsonl from an audit line."""
    parts = []
    for code in line["reasons"]:
        if code == "multi_speaker":
            parts.append(f"{line.get('voices')} voices among {line.get('windows')} windows (the second holds "
                         f"{100 * line.get('second_voice_fraction', 0):.0f} %)")
        elif code == "speaker_mismatch":
            parts.append(f"cosine {line.get('speaker_similarity')} to the speaker's other recordings")
        elif code == "duplicate_audio":
            parts.append(f"the same audio as {line.get('duplicate_of')}")
        elif code in QUALITY_MEASURE and "quality" in line:
            name, unit = QUALITY_MEASURE[code]
            parts.append(f"{name.replace('_', ' ')} {line['quality'].get(name)}{unit}")
        else:
            parts.append(code)
    return "; ".join(f"{c}: {p}" if p != c else c for c, p in zip(line["reasons"], parts))


def verdict(reasons: Sequence[str]) -> str:
    if any(r in REJECT_REASONS for r in reasons):
        return "reject"
    return "flag" if reasons else "keep"


def near_duplicates(recordings: Sequence[tuple]) -> Dict[str, str]:
    """{duplicate id: id kept} over (id, speaker, speech_samples, unit embedding, fingerprint) of recordings filed
    under *different* speakers: the same audio re-encoded (another codec or bitrate, so another PCM digest). Its
    speech lasts as long (within NEAR_DUPLICATE_DURATION, or 0.2 s), and the windows at the same places, the first
    and the last (`fingerprint`), embed alike (NEAR_DUPLICATE_SIMILARITY): two recordings of one voice share the
    voice but not their first and last words. Candidates are neighbours in duration order, so the cost stays
    near-linear in the number of recordings."""
    items = sorted((r for r in recordings if r[3] is not None), key=lambda r: (r[2], r[0]))
    dupes: Dict[str, str] = {}
    for i, (rid, spk, n, emb, fp) in enumerate(items):
        if rid in dupes:
            continue
        for j in range(i + 1, len(items)):
            oid, ospk, on, oemb, ofp = items[j]
            if on - n > max(n * NEAR_DUPLICATE_DURATION, 0.2 * SAMPLE_RATE):
                break
            if ospk == spk or oid in dupes or float(np.dot(emb, oemb)) < NEAR_DUPLICATE_SIMILARITY:
                continue
            if fp is not None and ofp is not None and \
                    float(np.min(np.sum(unit(fp) * unit(ofp), axis=1))) >= NEAR_DUPLICATE_SIMILARITY:
                kept, dup = sorted((rid, oid))
                dupes[dup] = kept
                if dup == rid:
                    break
    return dupes


@dataclasses.dataclass(frozen=True)
class AuditConfig:
    """The audit's settings (`--audit-*` flags), stored in dataset.json. `model`: an export with embeddings (the
    speaker checks run only with one); `policy`: `reject` keeps rejected recordings out of the shards, `flag` keeps
    them (both write audit.jsonl), `off` skips the audit; `gates`: the quality gates (pipelines.quality), which
    run with or without a model."""

    model: Optional[str] = None
    policy: str = "reject"
    checks: SpeakerChecks = SpeakerChecks()
    gates: QualityGates = QualityGates()

    @property
    def enabled(self) -> bool:
        return self.policy != "off"

    def validate(self) -> None:
        if self.policy not in AUDIT_POLICIES:
            raise ValueError(f"--audit-policy must be one of {', '.join(AUDIT_POLICIES)}")
        self.checks.validate()
        self.gates.validate()

    def to_json(self) -> Dict:
        return {"model": self.model, "policy": self.policy, "speaker_checks": self.checks.to_json(),
                "quality_gates": self.gates.to_json(),
                "reject_reasons": list(REJECT_REASONS), "flag_reasons": list(FLAG_REASONS)}

    @classmethod
    def from_json(cls, data: Mapping) -> "AuditConfig":
        if not data:
            return cls(policy="off")  # datasets built before the audit existed
        return cls(model=data.get("model"), policy=data.get("policy", "reject"),
                   checks=SpeakerChecks.from_json(data.get("speaker_checks") or {}),
                   gates=QualityGates.from_json(data.get("quality_gates") or {}))
