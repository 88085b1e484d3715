"""Which recordings become how many segments in which split: caps, minimums and leakage-free splits.

Plain functions over small per-recording metadata (never audio), so they run in one place for the
whole corpus and give the same answer on every runner.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from pipelines.config import BuildConfig
from pipelines.schema import SAMPLE_RATE, SPLITS


def stable_hash(text: str) -> int:
    """A 64-bit hash identical across processes, machines and Python versions."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def unit_interval(text: str) -> float:
    return stable_hash(text) / 2.0 ** 64


@dataclasses.dataclass(frozen=True)
class Entry:
    """One analysed recording (a manifest line that decoded into enough speech)."""

    id: str
    speaker: str
    recording: str
    speech_samples: int


@dataclasses.dataclass(frozen=True)
class Assignment:
    id: str
    split: Optional[str]  # None in segment mode: each segment hashes to its own split
    max_segments: int
    seconds: float  # speech seconds this recording contributes after the cap


def segment_split(segment_id: str, fractions: Sequence[float], seed: str) -> str:
    """Split of one segment in `--split-by segment` mode (the Keras example's random split)."""
    return _by_threshold(unit_interval(f"{seed}|segment|{segment_id}"), fractions)


def _by_threshold(u: float, fractions: Sequence[float]) -> str:
    acc = 0.0
    for split, frac in zip(SPLITS, fractions):
        acc += frac
        if u < acc:
            return split
    return next(s for s, f in zip(reversed(SPLITS), reversed(fractions)) if f > 0)


def allocate_counts(n: int, fractions: Sequence[float]) -> List[int]:
    """Largest-remainder allocation of n items to the splits; every split with a non-zero fraction
    gets at least one item when n allows, taken from the largest."""
    raw = [n * f for f in fractions]
    counts = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _assign_recordings(weights: Dict[str, float], fractions: Sequence[float], seed: str) -> Dict[str, str]:
    """One speaker's recordings to splits, in stable-hash order. The first goes to train (every speaker
    is in train); when the speaker has at least one recording per wanted split, the next ones seed
    validation and test; every later one goes to the split furthest below its share of the seconds."""
    total = sum(weights.values())
    wanted = [s for s, f in zip(SPLITS, fractions) if f > 0]
    assigned = {s: 0.0 for s in SPLITS}
    out: Dict[str, str] = {}
    order = sorted(weights, key=lambda r: (stable_hash(f"{seed}|recording|{r}"), r))
    for k, rec in enumerate(order):
        if k == 0:
            split = SPLITS[0]
        elif len(order) >= len(wanted) and k < len(wanted):
            split = wanted[k]
        else:
            split = max((fractions[i] * total - assigned[s], -i, s) for i, s in enumerate(SPLITS)
                        if fractions[i] > 0)[2]
        out[rec] = split
        assigned[split] += weights[rec]
    return out


def make_plan(entries: Iterable[Entry], config: BuildConfig) -> Tuple[List[Assignment], List[Tuple[str, str, str]]]:
    """Apply caps, minimums and the split. Returns (assignments, rejects as (id, reason, message))."""
    by_speaker: Dict[str, List[Entry]] = defaultdict(list)
    for e in entries:
        by_speaker[e.speaker].append(e)
    segmentation = config.segmentation
    rejects: List[Tuple[str, str, str]] = []
    kept: Dict[str, List[Tuple[Entry, int, int]]] = {}  # speaker -> (entry, max_segments, samples used)
    for speaker in sorted(by_speaker):
        items = sorted(by_speaker[speaker], key=lambda e: e.id)
        total_s = sum(e.speech_samples for e in items) / SAMPLE_RATE
        if total_s < config.min_seconds_per_speaker:
            for e in items:
                rejects.append((e.id, "speaker_below_min_seconds",
                                f"speaker {speaker} has {total_s:.1f} s of speech, "
                                f"below --min-seconds-per-speaker {config.min_seconds_per_speaker:g}"))
            continue
        budget = config.max_samples_per_speaker
        used = 0
        chosen = []
        for e in items:
            if budget is not None and used >= budget:
                rejects.append((e.id, "speaker_cap_reached",
                                f"speaker {speaker} reached --max-seconds-per-speaker "
                                f"{config.max_seconds_per_speaker:g} before this recording"))
                continue
            samples = e.speech_samples if budget is None else min(e.speech_samples, budget - used)
            n = segmentation.count(samples, None if samples == e.speech_samples else "drop")
            if n == 0:
                rejects.append((e.id, "speaker_cap_reached",
                                f"speaker {speaker}: the {samples / SAMPLE_RATE:.2f} s left under "
                                f"--max-seconds-per-speaker make no whole segment"))
                used = budget if budget is not None else used
                continue
            chosen.append((e, n, samples))
            used += samples
        if chosen:
            kept[speaker] = chosen
    return _split(kept, config), rejects


def _split(kept: Dict[str, List[Tuple[Entry, int, int]]], config: BuildConfig) -> List[Assignment]:
    out: List[Assignment] = []
    fr = config.split_fractions
    if config.split_by == "segment":
        for speaker in sorted(kept):
            out += [Assignment(e.id, None, n, s / SAMPLE_RATE) for e, n, s in kept[speaker]]
        return out
    if config.split_by == "speaker":
        speakers = sorted(kept, key=lambda s: (stable_hash(f"{config.split_seed}|speaker|{s}"), s))
        counts = allocate_counts(len(speakers), fr)
        split_of, i = {}, 0
        for split, c in zip(SPLITS, counts):
            for s in speakers[i:i + c]:
                split_of[s] = split
            i += c
        for speaker in sorted(kept):
            out += [Assignment(e.id, split_of[speaker], n, s / SAMPLE_RATE) for e, n, s in kept[speaker]]
        return out
    # split by recording: a recording key never spans two splits, even across speakers
    global_split: Dict[str, str] = {}
    for speaker in sorted(kept):
        weights: Dict[str, float] = defaultdict(float)
        for e, n, s in kept[speaker]:
            weights[e.recording] += s
        fixed = {r: global_split[r] for r in weights if r in global_split}
        free = {r: w for r, w in weights.items() if r not in fixed}
        assigned = _assign_recordings(free, fr, config.split_seed) if free else {}
        global_split.update(assigned)
        for e, n, s in kept[speaker]:
            out.append(Assignment(e.id, global_split[e.recording], n, s / SAMPLE_RATE))
    return out


def expected_segments(assignments: Iterable[Assignment], fractions: Sequence[float]) -> Dict[str, float]:
    """Expected segment count per split (exact except in segment mode, where it is the expectation)."""
    counts = {s: 0.0 for s in SPLITS}
    for a in assignments:
        if a.split is None:
            for s, f in zip(SPLITS, fractions):
                counts[s] += a.max_segments * f
        else:
            counts[a.split] += a.max_segments
    return counts


def duplicate_audio(recordings: Iterable[Tuple[str, str]]) -> Dict[str, str]:
    """{duplicate id: the id kept} for recordings (id, digest of their decoded audio) that share a digest:
    the smallest id of each group is kept, so the choice does not depend on the order of arrival."""
    first: Dict[str, str] = {}
    dupes: Dict[str, str] = {}
    for rec_id, digest in sorted(recordings):
        if not digest:
            continue
        if digest in first:
            dupes[rec_id] = first[digest]
        else:
            first[digest] = rec_id
    return dupes
