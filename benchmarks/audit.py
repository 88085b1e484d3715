"""The acoustic audit's speaker checks measured on real speech: labelled test recordings, thresholds calibrated
on one half of the speakers and reported on the other.

  python -m benchmarks.audit --export JOB/export --speech DIR [--exclude-train-of DATASET] [--output results.json]

DIR is laid out <speaker>/<files> (e.g. LibriSpeech: one utterance each is enough). Speakers in the train split
of DATASET (the dataset the export was trained on) are left out: the audit must work on voices its model never
heard. The others are halved by a stable hash: thresholds are chosen on the *calibration* half and the figures
reported on the *evaluation* half. Test recordings, from each speaker's speech after silence stripping:

- `single`: one speaker's speech (the false alarms of multi_speaker);
- `two50`: two speakers concatenated; `two20`: the second one 20 % of the time; `inter`: alternating 3-second turns;
  `three`: three speakers concatenated. Pairs of the same and of different sex when the folder has LibriSpeech's
  SPEAKERS.TXT;
- misfiled: each speaker's speech cut into 3 recordings, plus one recording of another speaker filed under it;
  the foreign one should be speaker_mismatch, the speaker's own ones not.

Every recording goes through the builder's own functions (pipelines.silence, pipelines.audit window_starts,
count_voices, speaker_mismatches; pipelines.embedding.WindowEmbedder), with the defaults of `SpeakerChecks` except
the thresholds being calibrated.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import write_results
from pipelines import arguments, audit, planning
from pipelines.decode import read_pcm
from pipelines.schema import SAMPLE_RATE
from pipelines.silence import SilenceParams, analyze_and_strip

AUDIO_EXT = (".flac", ".wav", ".mp3", ".ogg", ".opus", ".m4a")
TARGET_FALSE_ALARMS = 0.02  # thresholds: the loosest with at most this share of false alarms on calibration


def speakers_of(folder: str) -> Dict[str, str]:
    """{speaker: its first audio file} of a <speaker>/<files> folder."""
    out = {}
    for name in sorted(os.listdir(folder)):
        sub = os.path.join(folder, name)
        if not os.path.isdir(sub):
            continue
        files = sorted(f for f in os.listdir(sub) if f.lower().endswith(AUDIO_EXT))
        if files:
            out[name] = os.path.join(sub, files[0])
    return out


def sexes(folder: str) -> Dict[str, str]:
    """LibriSpeech's SPEAKERS.TXT (`id | F | subset | minutes | name`), when present."""
    path = os.path.join(folder, "SPEAKERS.TXT")
    out: Dict[str, str] = {}
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            parts = [p.strip() for p in line.split("|")]
            if not line.startswith(";") and len(parts) >= 2:
                out[parts[0]] = parts[1]
    return out


def train_speakers(dataset: Optional[str]) -> set:
    if not dataset:
        return set()
    with open(os.path.join(dataset, "speakers.tsv"), encoding="utf-8") as f:
        return {row["speaker"].split(":", 1)[-1] for row in csv.DictReader(f, delimiter="\t")
                if float(row.get("train_seconds") or 0) > 0}


def speech_of(path: str) -> np.ndarray:
    buf = io.BytesIO()
    analyze_and_strip(path, buf.write, SilenceParams())
    return read_pcm(buf.getvalue())


@dataclasses.dataclass
class Embedded:
    kind: str
    half: str
    label: str
    windows: np.ndarray  # unit embeddings of the windows the builder would embed


def embed_recording(embedder, pcm: np.ndarray, checks: audit.SpeakerChecks) -> np.ndarray:
    window = embedder.window_samples(checks.window_samples)
    starts = audit.window_starts(pcm.size, window, checks)
    return embedder.embed([pcm[s:s + window] for s in starts])


def make_recordings(speech: Dict[str, np.ndarray], half_of: Dict[str, str], sex: Dict[str, str],
                    pairs_per_kind: int, seed: int = 7):
    """(kind, half, label, pcm) of the multi-speaker test set and the singles."""
    rng = np.random.RandomState(seed)
    for s in sorted(speech):
        yield "single", half_of[s], s, speech[s]
    turn = 3 * SAMPLE_RATE
    for half in ("calibration", "evaluation"):
        ss = sorted(s for s in speech if half_of[s] == half)
        pairs = list(itertools.combinations(ss, 2))
        rng.shuffle(pairs)
        groups = [("same", [p for p in pairs if sex.get(p[0]) and sex.get(p[0]) == sex.get(p[1])]),
                  ("diff", [p for p in pairs if sex.get(p[0]) and sex.get(p[1]) and sex[p[0]] != sex[p[1]]])]
        if not sex:
            groups = [("any", pairs)]
        for sexes_, plist in groups:
            for a, b in plist[:pairs_per_kind]:
                A, B = speech[a], speech[b]
                yield "two50", half, f"{sexes_}:{a}+{b}", np.concatenate([A, B])
                yield "two20", half, f"{sexes_}:{a}+{b}", np.concatenate([A, B[:len(A) // 4]])
                turns = []
                for k in range(0, min(len(A), len(B)), turn):
                    turns += [A[k:k + turn], B[k:k + turn]]
                yield "inter", half, f"{sexes_}:{a}+{b}", np.concatenate(turns)
        triples = list(itertools.combinations(ss, 3))
        rng.shuffle(triples)
        for a, b, c in triples[:pairs_per_kind]:
            yield "three", half, f"{a}+{b}+{c}", np.concatenate([speech[a], speech[b], speech[c]])


def voices_table(embedded: List[Embedded], checks: audit.SpeakerChecks) -> Dict[str, Dict[str, float]]:
    """{half: {kind: share flagged multi_speaker}}."""
    out: Dict[str, Dict[str, List[bool]]] = {}
    for e in embedded:
        out.setdefault(e.half, {}).setdefault(e.kind, []).append(audit.count_voices(e.windows, checks).voices >= 2)
    return {h: {k: round(float(np.mean(v)), 4) for k, v in sorted(kinds.items())} for h, kinds in out.items()}


def calibrate_cross(embedded: List[Embedded], checks: audit.SpeakerChecks) -> float:
    """The largest cross_similarity whose false alarms on the calibration singles are <= TARGET_FALSE_ALARMS."""
    singles = [audit.count_voices(e.windows, checks) for e in embedded if e.kind == "single" and e.half == "calibration"]
    crosses = sorted(v.cross_similarity for v in singles if v.second_voice_fraction >= checks.min_voice_fraction)
    allowed = int(np.floor(TARGET_FALSE_ALARMS * len(singles)))
    if len(crosses) <= allowed:
        return 0.5
    return round(float(crosses[allowed]) - 1e-3, 3)  # strictly below the (allowed+1)-th lowest


def misfiled(embedder, speech: Dict[str, np.ndarray], half_of: Dict[str, str], checks: audit.SpeakerChecks,
             pieces: int = 3):
    """Per half: (similarities of speakers' own recordings, similarities of the misfiled ones)."""
    rec = {}
    for s, pcm in sorted(speech.items()):
        n = pcm.size // pieces
        rec[s] = [audit.recording_embedding(embed_recording(embedder, pcm[i * n:(i + 1) * n], checks))
                  for i in range(pieces)]
    out = {}
    for half in ("calibration", "evaluation"):
        ss = sorted(s for s in speech if half_of[s] == half)
        own, foreign = [], []
        for i, s in enumerate(ss):
            other = ss[(i + 1 + planning.stable_hash(s) % (len(ss) - 1)) % len(ss)]
            embs = rec[s] + [rec[other][planning.stable_hash(s + other) % pieces]]
            ids = [f"{s}-{k}" for k in range(pieces)] + ["foreign"]
            sims = audit.speaker_mismatches(ids, np.stack(embs), checks)
            own += [sims[i] for i in ids[:-1]]
            foreign.append(sims["foreign"])
        out[half] = (np.array(own), np.array(foreign))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m benchmarks.audit", __doc__)
    p.add_argument("--export", required=True, help="the audit model: an export of trainer.task")
    p.add_argument("--speech", required=True, help="folder <speaker>/<files> of clean single-speaker speech")
    p.add_argument("--exclude-train-of", default=None, help="dataset folder whose train speakers are left out")
    p.add_argument("--pairs", type=int, default=25, help="pairs per kind (same sex, different sex) and half")
    p.add_argument("--window-seconds", type=float, default=audit.SpeakerChecks().window_s,
                   help="the audit's window (the builder's --audit-window-seconds)")
    p.add_argument("--min-windows", type=int, default=audit.SpeakerChecks().min_windows,
                   help="the builder's --audit-min-windows")
    p.add_argument("--coverage", type=float, default=audit.SpeakerChecks().coverage,
                   help="the builder's --audit-coverage")
    arguments.flag(p, "--output", "--out", dest="out", default=None, help="write the figures as JSON here")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    for path in (args.export, args.speech):
        if not os.path.isdir(path):
            p.error(f"{path}: no such folder")

    from pipelines.embedding import WindowEmbedder

    embedder = WindowEmbedder(args.export)
    checks = audit.SpeakerChecks(window_s=args.window_seconds, min_windows=args.min_windows, coverage=args.coverage)
    checks.validate()
    excluded = train_speakers(args.exclude_train_of)
    files = {s: f for s, f in speakers_of(args.speech).items() if s not in excluded}
    half_of = {s: ("calibration" if planning.stable_hash(s) % 2 == 0 else "evaluation") for s in files}
    t0 = time.process_time()
    speech = {s: speech_of(f) for s, f in files.items()}
    decode_cpu = time.process_time() - t0
    print(f"{len(speech)} speakers the model never heard ({len(excluded)} excluded), median speech "
          f"{np.median([x.size for x in speech.values()]) / SAMPLE_RATE:.1f} s", flush=True)

    t0 = time.process_time()
    embedded = [Embedded(kind, half, label, embed_recording(embedder, pcm, checks))
                for kind, half, label, pcm in make_recordings(speech, half_of, sexes(args.speech), args.pairs)]
    singles_s = sum(x.size for x in speech.values()) / SAMPLE_RATE
    embed_cpu = time.process_time() - t0
    cross = calibrate_cross(embedded, checks)
    calibrated = dataclasses.replace(checks, cross_similarity=cross)
    voices_default = voices_table(embedded, checks)
    voices_calibrated = voices_table(embedded, calibrated)

    sims = misfiled(embedder, speech, half_of, checks)
    own_cal, foreign_cal = sims["calibration"]
    allowed = int(np.floor(TARGET_FALSE_ALARMS * own_cal.size))
    min_sim = round(float(np.sort(own_cal)[allowed]) - 1e-3, 3)

    def mismatch_rates(threshold):
        return {h: {"misfiled_flagged": round(float(np.mean(f < threshold)), 4),
                    "own_flagged": round(float(np.mean(o < threshold)), 4), "misfiled": int(f.size),
                    "own": int(o.size)} for h, (o, f) in sims.items()}

    sweep_voices = {f"{c:.2f}": voices_table(embedded, dataclasses.replace(checks, cross_similarity=c))
                    for c in np.arange(0.3, 0.651, 0.05)}
    pooled = {}
    for c, table in sweep_voices.items():
        kinds = {}
        for e in embedded:
            kinds.setdefault(e.kind, []).append(e)
            if e.kind in ("two50", "two20", "inter"):  # and by the pair's sexes (LibriSpeech's SPEAKERS.TXT)
                kinds.setdefault(f"{e.kind}/{e.label.split(':', 1)[0]}", []).append(e)
        pooled[c] = {k: round(float(np.mean([audit.count_voices(e.windows, dataclasses.replace(
            checks, cross_similarity=float(c))).voices >= 2 for e in v])), 4) for k, v in sorted(kinds.items())}
    own_all = np.concatenate([o for o, _ in sims.values()])
    foreign_all = np.concatenate([f for _, f in sims.values()])
    sweep_mismatch = {f"{t:.2f}": {"misfiled_flagged": round(float(np.mean(foreign_all < t)), 4),
                                   "own_flagged": round(float(np.mean(own_all < t)), 4)}
                      for t in np.arange(0.2, 0.651, 0.05)}
    for c, row in pooled.items():
        print(f"multi_speaker both halves, cross_similarity {c}: {json.dumps(row)}")
    for t, row in sweep_mismatch.items():
        print(f"speaker_mismatch both halves, min_speaker_similarity {t}: {json.dumps(row)}")
    result = {
        "export": args.export, "speakers": len(speech), "excluded_train_speakers": len(excluded),
        "halves": {h: sum(1 for s in half_of if half_of[s] == h) for h in ("calibration", "evaluation")},
        "defaults": checks.to_json(), "target_false_alarms": TARGET_FALSE_ALARMS,
        "recordings": {k: sum(1 for e in embedded if e.kind == k) for k in sorted({e.kind for e in embedded})},
        "multi_speaker": {"at_default": {"cross_similarity": checks.cross_similarity, **voices_default},
                          "calibrated": {"cross_similarity": cross, **voices_calibrated}},
        "speaker_mismatch": {"at_default": {"min_speaker_similarity": checks.min_speaker_similarity,
                                            **mismatch_rates(checks.min_speaker_similarity)},
                             "calibrated": {"min_speaker_similarity": min_sim, **mismatch_rates(min_sim)}},
        "sweep": {"multi_speaker_both_halves": pooled, "speaker_mismatch_both_halves": sweep_mismatch},
        "cpu_seconds": {"decode_and_strip": round(decode_cpu, 2), "embed_all_test_recordings": round(embed_cpu, 2),
                        "clean_speech_seconds": round(singles_s, 1)},
    }
    for name, block in (("multi_speaker", result["multi_speaker"]), ("speaker_mismatch", result["speaker_mismatch"])):
        for which, figures in block.items():
            print(f"{name} {which}: {json.dumps(figures)}")
    if args.out:
        write_results(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
