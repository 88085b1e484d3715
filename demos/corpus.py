"""A deterministic, offline demo corpus of speech, for the README demo and for tests of the builder.

`make_corpus` writes `OUT/audio/<speaker>/<id>.<fmt>` and `OUT/manifest.jsonl` (pipelines.manifest). Each
speaker is one espeak-ng voice variant with its own pitch and speed (or, without espeak-ng, a numpy
vowel synthesiser with its own f0 and formants). Recordings join utterances with short and long pauses
(the builder strips those over 0.5 s) over a -55 dBFS noise floor, and cycle through formats, sample
rates and channel counts so that decoding, resampling and downmixing are all exercised.

    python -m demos.corpus --output /tmp/demo [--speakers 6] [--recordings 8] [--seconds 12]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import logging
import os
import random
import re
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pipelines import arguments
from pipelines.decode_ffmpeg import find_ffmpeg
from pipelines.manifest import ManifestRecord, to_jsonl

log = logging.getLogger(__name__)

CORPUS_VERSION = 1
SOURCE_RATE = 22050  # espeak-ng's native rate; the synthesiser uses it too
NOISE_DBFS = -55.0
PEAK = 0.7  # about -3 dBFS
LICENSE = "CC0-1.0, generated"
FORMATS = ("wav", "flac", "mp3", "ogg")
GENERATORS = ("auto", "espeak", "synth")
# Per speaker: espeak voice, pitch (0-99), words per minute; synthesiser f0 (Hz), vocal-tract scale.
VOICES: Tuple[Tuple[str, int, int, float, float], ...] = (  # espeak pitches chosen to spread f0 (82-250 Hz)
    ("en+m1", 50, 150, 97.0, 1.00), ("en+f2", 50, 165, 200.0, 1.18), ("en+m3", 15, 140, 82.0, 0.92),
    ("en+f4", 80, 155, 250.0, 1.24), ("en-us+m7", 65, 175, 124.0, 1.06), ("en+f1", 30, 145, 154.0, 1.12),
    ("en-gb-scotland+m2", 55, 160, 110.0, 0.96), ("en-us+f3", 30, 150, 175.0, 1.16),
)
# Encoder arguments, and the (sample rate, ...) options each format cycles through.
_CODECS: Dict[str, List[str]] = {
    "wav": ["-c:a", "pcm_s16le"], "flac": ["-c:a", "flac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"], "ogg": ["-c:a", "libvorbis", "-q:a", "3"],
}
_RATES: Dict[str, Tuple[int, ...]] = {
    "wav": (22050, 16000), "flac": (44100, 16000), "mp3": (8000, 22050, 44100), "ogg": (44100, 16000, 8000),
}
_ADJ = "quiet bright old small green heavy gentle rapid silver narrow warm distant".split()
_NOUN = "river garden window market teacher lantern harbor mountain letter kitchen violin meadow".split()
_VERB = "carried followed painted noticed opened visited counted borrowed crossed repaired".split()
_PREP = "near behind across beyond under beside".split()
_WHEN = ("slowly", "yesterday", "carefully", "again", "before dawn", "after supper", "every morning")
_NAME = "Anna Peter Maria Thomas Clara Henry Olivia Samuel".split()
_TEMPLATES = (
    "The {a} {n} {v} the {n2} {p} the {n3}.",
    "{name} {v} a {a} {n} {w}.",
    "Every {n} {p} the {n2} was {a} and {a2}.",
    "Did {name} really see the {a} {n} {p} the {n2}?",
)
# Formants (F1, F2, F3 in Hz) of an adult male vowel, keyed by the letter that spells it.
_VOWELS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
           "o": (570, 840, 2410), "u": (300, 870, 2240), "y": (270, 2290, 3010)}


def voice(speaker: int) -> Tuple[str, int, int, float, float]:
    """The voice of 1-based `speaker`; past the table, voices repeat with higher pitch and speed."""
    name, pitch, wpm, f0, tract = VOICES[(speaker - 1) % len(VOICES)]
    cycle = (speaker - 1) // len(VOICES)
    return name, min(99, pitch + 12 * cycle), wpm + 10 * cycle, f0 * (1 + 0.15 * cycle), tract


def speaker_name(speaker: int, generator: str) -> str:
    """Readable name, e.g. "Voice 3 (en+m3)"; it says which voice and pitch made it."""
    name, pitch, _, f0, _ = voice(speaker)
    detail = (name if speaker <= len(VOICES) else f"{name} p{pitch}") if generator == "espeak" \
        else f"synth {f0:.0f} Hz"
    return f"Voice {speaker} ({detail})"


def sentence(rng: random.Random) -> str:
    """One English sentence from the fixed word lists (every field drawn, so the rng stays in step)."""
    words = dict(a=rng.choice(_ADJ), a2=rng.choice(_ADJ), n=rng.choice(_NOUN), n2=rng.choice(_NOUN),
                 n3=rng.choice(_NOUN), v=rng.choice(_VERB), p=rng.choice(_PREP), w=rng.choice(_WHEN),
                 name=rng.choice(_NAME))
    return rng.choice(_TEMPLATES).format(**words)


def pick_generator(generator: str = "auto") -> str:
    """"espeak" or "synth": `auto` takes espeak-ng when it is installed."""
    if generator not in GENERATORS:
        raise ValueError(f"generator must be one of {GENERATORS}, not {generator!r}")
    if generator == "synth":
        return "synth"
    if shutil.which("espeak-ng"):
        return "espeak"
    if generator == "espeak":
        raise RuntimeError("espeak-ng not found: install it (apt-get install espeak-ng) or use generator='synth'")
    return "synth"


def espeak_utterance(text: str, speaker: int) -> np.ndarray:
    """`text` spoken by espeak-ng in the speaker's voice, as float samples at SOURCE_RATE."""
    name, pitch, wpm, _, _ = voice(speaker)
    cmd = [shutil.which("espeak-ng") or "espeak-ng", "-v", name, "-p", str(pitch), "-s", str(wpm),
           "--stdout", "--", text]
    data = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    # On a pipe, espeak-ng cannot seek back to fix the RIFF sizes: read the rates, take all after "data".
    fmt, start = data.find(b"fmt "), data.find(b"data")
    if fmt < 0 or start < 0:
        raise RuntimeError(f"espeak-ng wrote no WAV for voice {name}")
    rate = int.from_bytes(data[fmt + 12:fmt + 16], "little")
    if rate != SOURCE_RATE:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {SOURCE_RATE} Hz")
    pcm = data[start + 8:]
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float64) / 32768.0


def synth_utterance(text: str, speaker: int, rng: random.Random) -> np.ndarray:
    """A vowel-like stand-in for `text`: one harmonic burst per vowel group, shaped by the speaker's
    formants, with a syllable-rate envelope, vibrato and short gaps at word and clause breaks."""
    _, _, wpm, f0, tract = voice(speaker)
    pieces: List[np.ndarray] = []
    for m in re.finditer(r"[aeiouy]+|[ ,.?]", text.lower()):
        if not m.group().strip():
            pieces.append(np.zeros(int(rng.uniform(0.02, 0.06) * SOURCE_RATE)))
            continue
        if m.group() in ",.?":
            pieces.append(np.zeros(int(0.12 * SOURCE_RATE)))
            continue
        n = int(rng.uniform(0.10, 0.20) * 150 / wpm * SOURCE_RATE)
        t = np.arange(n) / SOURCE_RATE
        base = f0 * (1 + 0.12 * (rng.random() - 0.5))  # intonation moves per syllable
        pitch = base * (1 + 0.03 * np.sin(2 * np.pi * 5.5 * t))
        phase = 2 * np.pi * np.cumsum(pitch) / SOURCE_RATE
        k = np.arange(1, int(4500 // base) + 1)
        formants = np.array(_VOWELS[m.group()[0]], float) * tract
        width = np.array([90.0, 110.0, 160.0]) * tract
        gains = (1 / (1 + ((k[:, None] * base - formants) / width) ** 2)).sum(1) / np.sqrt(k)
        burst = (gains[:, None] * np.sin(k[:, None] * phase)).sum(0)
        envelope = np.sin(np.pi * np.arange(n) / n) ** 0.6  # one syllable: rise and fall
        pieces.append(burst * envelope / (np.abs(burst).max() + 1e-9))
    return np.concatenate(pieces) if pieces else np.zeros(0)


def render(speaker: int, take: int, seconds: float, generator: str) -> Tuple[np.ndarray, str]:
    """The mono int16 recording at SOURCE_RATE, exactly `seconds` long, and its first sentence.

    Pauses alternate between long (0.8-2.0 s, stripped by the builder) and short (0.2-0.4 s, kept),
    long first; their lengths and the text come from an rng seeded by speaker and take."""
    rng = random.Random(speaker * 100_003 + take)
    target = int(round(seconds * SOURCE_RATE))
    parts, texts = [np.zeros(int(0.25 * SOURCE_RATE))], []
    total = parts[0].size
    while total < target:
        text = sentence(rng)
        texts.append(text)
        speech = espeak_utterance(text, speaker) if generator == "espeak" else synth_utterance(text, speaker, rng)
        pause = rng.uniform(0.8, 2.0) if len(texts) % 2 else rng.uniform(0.2, 0.4)
        parts += [speech, np.zeros(int(pause * SOURCE_RATE))]
        total += speech.size + parts[-1].size
    audio = np.concatenate(parts)[:target]
    audio *= PEAK / (np.abs(audio).max() + 1e-9)
    fade = min(audio.size, int(0.02 * SOURCE_RATE))  # no click where the cut falls inside a word
    audio[audio.size - fade:] *= np.linspace(1.0, 0.0, fade)
    noise = np.random.default_rng(speaker * 100_003 + take).normal(0.0, 10 ** (NOISE_DBFS / 20), audio.size)
    samples = np.clip(np.round((audio + noise) * 32767), -32768, 32767).astype(np.int16)
    return samples, texts[0] if texts else ""


def encode(samples: np.ndarray, path: str, fmt: str, rate: int, channels: int, ffmpeg: str) -> None:
    """Encode SOURCE_RATE mono int16 to `path` with ffmpeg; bitexact, so reruns give the same bytes
    (without it the Ogg muxer picks a random stream serial number and FLAC stamps the encoder)."""
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", str(SOURCE_RATE), "-ac", "1",
           "-i", "pipe:0", "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact",
           "-ar", str(rate), "-ac", str(channels), *_CODECS[fmt], "-f", fmt, "file:" + path]
    subprocess.run(cmd, input=samples.astype("<i2").tobytes(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, check=True)


def decoded_seconds(path: str, rate: int, ffmpeg: str) -> float:
    """The file's duration as ffmpeg decodes it (lossy encoders pad; ffmpeg trims what they declare)."""
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", "file:" + path, "-map", "0:a:0", "-f", "s16le",
           "-ac", "1", "-ar", str(rate), "pipe:1"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True).stdout
    return len(out) / 2 / rate


def recording_format(index: int, formats: Sequence[str]) -> Tuple[str, int, int]:
    """(format, sample rate, channels) of the `index`-th recording (0-based, across the corpus)."""
    fmt = formats[index % len(formats)]
    rates = _RATES[fmt]
    return fmt, rates[(index // len(formats)) % len(rates)], 2 if index % 3 == 1 else 1


def make_recording(speaker: int, take: int, index: int, seconds: float, formats: Sequence[str],
                   generator: str, staging: str, ffmpeg: str) -> ManifestRecord:
    """Render, encode and measure one recording; returns its manifest record."""
    spk, rec_id = f"s{speaker:02d}", f"demo-s{speaker:02d}-r{take:02d}"
    fmt, rate, channels = recording_format(index, formats)
    samples, first = render(speaker, take, seconds, generator)
    os.makedirs(os.path.join(staging, spk), exist_ok=True)
    path = os.path.join(staging, spk, f"{rec_id}.{fmt}")
    encode(samples, path, fmt, rate, channels, ffmpeg)
    return ManifestRecord(
        id=rec_id, path=f"audio/{spk}/{rec_id}.{fmt}", speaker=f"demo:{spk}",
        speaker_name=speaker_name(speaker, generator), recording=rec_id, group=f"demo:{spk}",
        source="demo", license=LICENSE, language="en", title=f"Take {take}: {first}",
        duration_s=round(decoded_seconds(path, rate, ffmpeg), 4))


def _write_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def make_corpus(out_dir: str, num_speakers: int = 6, recordings_per_speaker: int = 8,
                seconds_per_recording: float = 12.0, formats: Sequence[str] = FORMATS,
                generator: str = "auto") -> str:
    """Write the demo corpus under `out_dir` and return the manifest path.

    Reuses an existing corpus made with the same parameters (recorded in `out_dir/corpus.json`)."""
    if num_speakers < 1 or recordings_per_speaker < 1 or seconds_per_recording <= 0:
        raise ValueError("speakers and recordings must be >= 1 and seconds > 0")
    unknown = [f for f in formats if f not in _CODECS]
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {list(formats)}")
    params = {"version": CORPUS_VERSION, "speakers": num_speakers, "recordings": recordings_per_speaker,
              "seconds": float(seconds_per_recording), "formats": list(formats), "generator": generator}
    manifest, info_path = os.path.join(out_dir, "manifest.jsonl"), os.path.join(out_dir, "corpus.json")
    audio_dir = os.path.join(out_dir, "audio")
    if os.path.exists(info_path):
        with open(info_path, encoding="utf-8") as f:
            if json.load(f).get("params") == params and os.path.exists(manifest):
                log.info("demo corpus: reusing %s", manifest)
                return manifest
        os.remove(info_path)  # from here on the old corpus is no longer valid
    elif os.path.exists(audio_dir):
        raise FileExistsError(f"{audio_dir} exists but was not made by this generator; not replacing it")
    used = pick_generator(generator)
    ffmpeg = find_ffmpeg()
    log.info("demo corpus: %d speakers x %d recordings x %.1f s with generator %s",
             num_speakers, recordings_per_speaker, seconds_per_recording, used)
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".audio-", dir=out_dir)
    try:
        jobs = [(s, r, (s - 1) * recordings_per_speaker + r - 1)
                for s in range(1, num_speakers + 1) for r in range(1, recordings_per_speaker + 1)]
        work = functools.partial(make_recording, seconds=seconds_per_recording, formats=list(formats),
                                 generator=used, staging=staging, ffmpeg=ffmpeg)
        # threads, two per core: jobs mostly wait on espeak-ng and ffmpeg subprocesses
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, 2 * (os.cpu_count() or 1))) as pool:
            records = list(pool.map(lambda job: work(*job), jobs))
        if os.path.exists(audio_dir):
            shutil.rmtree(audio_dir)
        os.replace(staging, audio_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_atomic(manifest, to_jsonl(sorted(records, key=lambda r: r.id)))
    _write_atomic(info_path, json.dumps({"params": params, "generator_used": used}, indent=2, sort_keys=True) + "\n")
    return manifest


def build_parser() -> argparse.ArgumentParser:
    parser = arguments.command_parser("python -m demos.corpus", __doc__)
    arguments.flag(parser, "--output", "--out", dest="out", required=True,
                   help="output folder (audio/, manifest.jsonl, corpus.json)")
    parser.add_argument("--speakers", type=int, default=6, help="number of speakers")
    parser.add_argument("--recordings", type=int, default=8, help="recordings per speaker")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per recording")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats to cycle through")
    parser.add_argument("--generator", choices=GENERATORS, default="auto", help="voice generator")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    print(make_corpus(args.out, args.speakers, args.recordings, args.seconds,
                      tuple(f.strip() for f in args.formats.split(",") if f.strip()), args.generator))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
