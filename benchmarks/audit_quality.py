"""The acoustic checks of pipelines.quality on real speech: detection on degraded copies, false alarms on clean
recordings, and what the meter costs against the builder's analysis pass.

  python -m benchmarks.audit_quality [--data DIR] [--output benchmarks/results/audit_quality.json]

Clean: every LibriSpeech file of librispeech_202 (202 speakers) and a seeded sample of FSDD (8 kHz digits).
Degraded copies of the LibriSpeech files (benchmarks.audit_sets): each real noise at 20/10/5/0 dB SNR, a
telephone copy, clipping at +6/+12/+20 dB over the peak, and the speech padded to 20 % / 10 % of the recording.
For every condition: the fraction of files each gate flags (with the default QualityGates, or --gates JSON),
and quantiles of each measure. FSDD is truly narrowband: its `narrowband` flags are findings, not false alarms.
Cost: CPU seconds per audio hour of QualityMeter against pipelines.silence.analyze_and_strip on the same
files (one at a time, and the same audio as one long FLAC).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from benchmarks import audit_sets as sets
from pipelines import arguments
from pipelines.decode import CHUNK_SAMPLES
from pipelines.quality import REASONS, SNR_MIN_SECONDS, Quality, QualityGates, QualityMeter, measure, reasons
from pipelines.schema import SAMPLE_RATE
from pipelines.silence import SilenceParams, analyze_and_strip

HERE = os.path.dirname(os.path.abspath(__file__))
SNRS = (20, 10, 5, 0)
CLIP_GAINS = (6, 12, 20)
SPEECH_FRACTIONS = (0.2, 0.1)
MEASURES = ("snr_db", "speech_ratio", "bandwidth_hz", "clipped_fraction", "loudness_db")
TARGET = {"low_snr": "noise", "narrowband": "telephone", "clipped": "clip", "low_speech_ratio": "padded"}
RULES = {
    "low_snr": "estimated SNR < 10 dB (noise a third of the speech amplitude): >= 90 % of 0 dB mixes of every "
               "noise, no clean LibriSpeech file; judged on recordings of >= 1 s (a shorter pause-free clip shows "
               "no noise floor)",
    "low_speech_ratio": "speech in < 25 % of the 10 ms frames: every copy padded to 20 % speech, no clean file",
    "narrowband": "no speech energy within 50 dB of the 300-3400 Hz band above 5 kHz: what 8 kHz sampling or a "
                  "telephone channel leaves (4 kHz at most), wideband speech reaches 7-8 kHz",
    "clipped": "> 0.1 % of samples (1 ms a second) in flat runs of >= 3 at full scale: every +12/+20 dB copy; "
               "+6 dB only where it flattens that much",
}


def conditions(clean: Sequence[np.ndarray], noises: Dict[str, np.ndarray]
               ) -> List[tuple]:
    """(name, kind, make(i, x)) of every degraded condition; kind says which gate it should trip."""
    out = [("clean", "clean", lambda i, x: x)]
    for name, noise in noises.items():
        for snr in SNRS:
            out.append((f"noise:{name}:{snr}dB", "noise",
                        lambda i, x, n=noise, s=snr: sets.mix_noise(x, n, s, seed=i)))
    out.append(("telephone", "telephone", lambda i, x: sets.telephone(x)))
    for gain in CLIP_GAINS:
        out.append((f"clip:+{gain}dB", "clip", lambda i, x, g=gain: sets.clip(x, g)))
    quiet = noises[sorted(noises)[-1]]
    for fraction in SPEECH_FRACTIONS:
        out.append((f"padded:{int(fraction * 100)}%speech", "padded",
                    lambda i, x, f=fraction: sets.pad_silence(x, f, quiet, seed=i)))
    return out


def summarize(qualities: Sequence[Quality], gates: QualityGates) -> dict:
    codes = [reasons(q, gates) for q in qualities]
    n = len(qualities)
    row = {"files": n, "flagged": {r: round(sum(r in c for c in codes) / n, 4) for r in REASONS},
           "any": round(sum(bool(c) for c in codes) / n, 4), "quantiles": {}}
    for m in MEASURES:
        v = np.array([getattr(q, m) for q in qualities], np.float64)
        row["quantiles"][m] = {k: round(float(np.percentile(v, p)), 6)
                               for k, p in (("min", 0), ("p1", 1), ("p5", 5), ("median", 50), ("p95", 95),
                                            ("max", 100))}
    return row


def cpu_per_hour(fn: Callable[[], None], hours: float, repeats: int = 3) -> float:
    """CPU seconds per audio hour of `fn` (the best of `repeats` runs: the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / hours


def meter_over(signals: Sequence[np.ndarray]) -> None:
    for x in signals:
        meter = QualityMeter()
        for start in range(0, x.size, CHUNK_SAMPLES):  # the decoder's chunks
            meter.update(x[start:start + CHUNK_SAMPLES])
        meter.result()


def cost(files: Sequence[str], clean: Sequence[np.ndarray]) -> dict:
    """The meter's CPU against the analysis pass's (decode + levels + pause stripping), per audio hour."""
    from benchmarks.short_clips import write_flac

    params = SilenceParams()
    hours = sum(x.size for x in clean) / SAMPLE_RATE / 3600
    out = {"audio_hours": round(hours, 3)}
    base = cpu_per_hour(lambda: [analyze_and_strip(f, lambda b: None, params) for f in files], hours)
    meter = cpu_per_hour(lambda: meter_over(clean), hours)
    out["per_file"] = {"files": len(files), "analyze_and_strip_cpu_s_per_h": round(base, 3),
                       "quality_meter_cpu_s_per_h": round(meter, 3), "ratio": round(meter / base, 4)}
    long = np.concatenate(clean)
    with tempfile.TemporaryDirectory(prefix="audit-quality-") as tmp:
        path = os.path.join(tmp, "long.flac")
        write_flac(path, long)
        base = cpu_per_hour(lambda: analyze_and_strip(path, lambda b: None, params), hours)
        meter = cpu_per_hour(lambda: meter_over([long]), hours)
    out["one_long_file"] = {"minutes": round(long.size / SAMPLE_RATE / 60, 1),
                            "analyze_and_strip_cpu_s_per_h": round(base, 3),
                            "quality_meter_cpu_s_per_h": round(meter, 3), "ratio": round(meter / base, 4)}
    return out


def table(rows: Dict[str, dict]) -> str:
    head = f"{'condition':40s} {'files':>5s} " + " ".join(f"{r:>16s}" for r in REASONS) + f" {'any':>6s}"
    lines = [head, "-" * len(head)]
    for name, row in rows.items():
        cells = " ".join(f"{100 * row['flagged'][r]:15.1f}%" for r in REASONS)
        lines.append(f"{name:40s} {row['files']:5d} {cells} {100 * row['any']:5.1f}%")
    return "\n".join(lines)


def run(data_dir: str, gates: QualityGates, fsdd_per_speaker: int, with_cost: bool,
        limit: Optional[int] = None) -> dict:
    files = sets.librispeech_files(data_dir)[:limit]
    clean = [sets.load(f) for f in files]
    noises = sets.noises(data_dir)
    rows: Dict[str, dict] = {}
    for name, _kind, make in conditions(clean, noises):
        rows[f"librispeech {name}"] = summarize([measure(make(i, x)) for i, x in enumerate(clean)], gates)
    fsdd = sets.fsdd_files(data_dir, per_speaker=fsdd_per_speaker)
    fsdd_q = [measure(sets.load(f)) for f in fsdd]
    rows["fsdd clean (8 kHz)"] = summarize(fsdd_q, gates)
    by_speaker = {}
    for f, q in zip(fsdd, fsdd_q):
        by_speaker.setdefault(os.path.basename(f).split("_")[1], []).append(q)
    rows.update({f"fsdd {s}": summarize(qs, gates) for s, qs in sorted(by_speaker.items())})
    other = [r for r in REASONS if r != "narrowband"]
    fsdd_codes = [[c for c in reasons(q, gates) if c != "narrowband"] for q in fsdd_q]
    result = {
        "gates": gates.to_json(), "rules": RULES, "conditions": rows,
        "false_alarms": {
            "librispeech_any": rows["librispeech clean"]["any"],
            "fsdd_any_but_narrowband": round(sum(bool(c) for c in fsdd_codes) / len(fsdd_q), 4),
            "fsdd_per_gate": {r: rows["fsdd clean (8 kHz)"]["flagged"][r] for r in other},
            "fsdd_narrowband_found": rows["fsdd clean (8 kHz)"]["flagged"]["narrowband"],
            # what the SNR gate would say without its minimum duration (SNR_MIN_SECONDS)
            "fsdd_snr_below_threshold_any_length": round(
                sum(q.snr_db < gates.min_snr_db for q in fsdd_q) / len(fsdd_q), 4) if gates.min_snr_db else 0.0,
            "fsdd_shorter_than_snr_min_seconds": round(
                sum(q.duration_s < SNR_MIN_SECONDS for q in fsdd_q) / len(fsdd_q), 4),
        },
        "data": {"librispeech_files": len(files), "fsdd_files": len(fsdd), "noises": sorted(noises),
                 "telephone": "numpy: ideal 300-3400 Hz band, 8 kHz, 8-bit mu-law, ideal interpolation to 16 kHz"},
    }
    if with_cost:
        result["cost"] = cost(files, clean)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m benchmarks.audit_quality", __doc__)
    arguments.flag(p, "--data", dest="data_dir", default=sets.DATA_DIR,
                   help="holds librispeech_202/, fsdd/recordings/ and noise/ (default: %(default)s)")
    arguments.flag(p, "--output", "--out", dest="out", default=os.path.join(HERE, "results", "audit_quality.json"),
                   help="the figures as JSON")
    p.add_argument("--gates", default="", help="QualityGates as JSON (default: the calibrated defaults)")
    p.add_argument("--fsdd-per-speaker", type=int, default=50, help="FSDD files per speaker (default: %(default)s)")
    p.add_argument("--limit", type=int, default=None, help="only the first N LibriSpeech files (a quick look)")
    p.add_argument("--no-cost", action="store_true", help="skip the CPU measurement")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    for sub in ("librispeech_202", os.path.join("fsdd", "recordings"), "noise"):
        if not os.path.isdir(os.path.join(args.data_dir, sub)):
            p.error(f"--data {args.data_dir}: no {sub}/ folder")
    try:
        gates = QualityGates.from_json(json.loads(args.gates)) if args.gates else QualityGates()
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        p.error(f"--gates: {exc}")
    if args.fsdd_per_speaker < 1 or (args.limit is not None and args.limit < 1):
        p.error("--fsdd-per-speaker and --limit must be >= 1")
    result = run(args.data_dir, gates, args.fsdd_per_speaker, not args.no_cost, args.limit)
    print(table(result["conditions"]))
    print(json.dumps({"gates": result["gates"], "false_alarms": result["false_alarms"],
                      "cost": result.get("cost")}, indent=1))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
