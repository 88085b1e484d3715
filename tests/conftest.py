"""Fixture factories: tiny generated corpora, a builder runner, and a reader for the written shards."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest

from pipelines.decode import write_wav
from pipelines.paths import real_data_dir

SHARED_DATA = Path(real_data_dir())  # optional real recordings (README, Development)
SR = 16000


def voiced(f0: float, seconds: float, sr: int = SR, seed: int = 0, level_db: float = -18.0) -> np.ndarray:
    """A speech-like burst: harmonics of f0 with a syllable-rate envelope, at about `level_db` dBFS."""
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 8))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28))
    ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01) if t.size else t
    sig = sig * env * ramp
    sig = sig / (np.sqrt(np.mean(sig ** 2)) + 1e-9) * 10 ** (level_db / 20)
    return sig


def utterance(f0: float, pattern: Sequence[float], sr: int = SR, seed: int = 0, noise_db: float = -65.0) -> np.ndarray:
    """Alternating speech bursts and pauses: pattern = [speech s, pause s, speech s, ...]."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, dur in enumerate(pattern):
        if i % 2 == 0:
            parts.append(voiced(f0, dur, sr, seed + i))
        else:
            parts.append(np.zeros(int(dur * sr)))
    x = np.concatenate(parts)
    x = x + rng.standard_normal(x.size) * 10 ** (noise_db / 20)
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def make_corpus(root: Path, speakers: int = 3, recordings: int = 4, pattern=(1.6, 0.8, 1.3, 0.3, 1.2, 1.5, 1.0),
                extra: Optional[List[Dict]] = None) -> Path:
    """A manifest corpus of WAV files, speaker k at f0 = 110 + 45 k Hz. Returns the manifest path."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in range(speakers):
        for r in range(recordings):
            rel = f"audio/spk{s}/rec{r}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            write_wav(root / rel, utterance(110 + 45 * s, pattern, seed=100 * s + r))
            lines.append({"id": f"test-s{s}-r{r}", "path": rel, "speaker": f"test:s{s}",
                          "speaker_name": f"Speaker {s}", "recording": f"test-s{s}-r{r}", "group": f"book{s}",
                          "source": "test", "license": "CC0", "language": "en"})
    lines += extra or []
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return manifest


def build(manifest_or_dir: Path, out: Path, *flags: str, audio_dir: bool = False):
    """Run the builder in-process on DirectRunner; returns its DatasetMeta (dataset.json)."""
    from pipelines import build_dataset

    src = ["--audio-dir" if audio_dir else "--manifest", str(manifest_or_dir)]
    return build_dataset.run([*src, "--output", str(out), *flags])


def read_split(out: Path, split: str) -> List[Dict]:
    """Every example of a split, read back with tf.data and the schema module, sorted by id."""
    import tensorflow as tf

    from pipelines import schema
    from pipelines.dataset_meta import DatasetMeta

    meta = DatasetMeta.read(str(out))
    files = meta.files(str(out), split)
    if not files:
        return []
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP" if meta.gzip else None)
    ds = ds.map(lambda s: schema.parse_example(s, meta.feature_config, meta.features))
    rows = []
    for ex in ds.as_numpy_iterator():
        row = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in ex.items()}
        rows.append(row)
    return sorted(rows, key=lambda r: r["id"])


def shard_bytes(out: Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tfrecord*"))}


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def small_dataset(small_corpus, tmp_path_factory):
    """The builder's default settings on the small corpus: (output folder, DatasetMeta)."""
    out = tmp_path_factory.mktemp("ds") / "out"
    return out, build(small_corpus, out)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """3 speakers x 4 recordings with audio, fft and log_mel, preprocessed (tf.Transform output present)."""
    from pipelines import preprocess

    root = tmp_path_factory.mktemp("trainer")
    manifest = make_corpus(root / "corpus", speakers=3, recordings=4)
    out = root / "dataset"
    build(manifest, out, "--features", "audio,fft,log_mel")
    preprocess.run(["--dataset", str(out)])
    return out


TINY_MODEL = ["--width", "0.25", "--embedding-dim", "16", "--batch-size", "16", "--seed", "1"]


@pytest.fixture(scope="session")
def trained(tiny_dataset, tmp_path_factory):
    """A tiny model trained on a copy of tiny_dataset, which is then deleted (the export must not need it):
    (job folder, metrics)."""
    import shutil

    from trainer import task

    root = tmp_path_factory.mktemp("job")
    data_copy = root / "data"
    shutil.copytree(tiny_dataset, data_copy)
    job = root / "job"
    args = task.get_args(["--data-dir", str(data_copy), "--job-dir", str(job), "--epochs", "4",
                          "--steps-per-epoch", "6", *TINY_MODEL])
    metrics = task.train_and_evaluate(args)
    shutil.rmtree(data_copy)
    return job, metrics


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium (scrapers.browser: its flags, a fresh --user-data-dir) for the report pages, which
    the tests open by file:// URL only; every host name fails to resolve inside it. Like the scraper tests'
    `driver`, the tests that use it fail, not skip, without Chromium (scripts/test.sh installs it)."""
    from scrapers import browser

    try:
        browser.find_chromium()
        browser.find_chromedriver()
    except browser.BrowserUnavailable as exc:
        pytest.fail(f"headless Chromium is required for this test: {exc}")
    with browser.headless_chromium(only_hosts=["localhost.invalid"]) as d:
        yield d


@pytest.fixture(scope="session")
def pitch_model(tmp_path_factory):
    """A stand-in audit model shaped like an export of trainer.task: `embed(waveform)` is the log spectrum
    below 1 kHz (4 Hz bins) within 26 dB of its peak, unit length: the tests' synthetic voices (harmonics of
    f0) and tones are told apart by pitch."""
    import tensorflow as tf

    from pipelines.config import BuildConfig
    from pipelines.model_info import MODEL_JSON, ModelInfo

    class Pitch(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="waveform")], autograph=False)
        def embed(self, waveform):
            spec = tf.abs(tf.signal.stft(waveform[None, :], 4096, 1024, 4096, pad_end=True))[0, :, :256]
            x = tf.math.log(tf.reduce_mean(spec, axis=0) + 1e-4)
            return {"embedding": tf.math.l2_normalize(tf.nn.relu(x - (tf.reduce_max(x) - 3.0)))}

    out = tmp_path_factory.mktemp("pitch") / "export"
    module = Pitch()
    tf.saved_model.save(module, str(out), signatures={"embed": module.embed})
    info = ModelInfo(feature="log_mel", build_config=BuildConfig(), speakers=(), kind="open_set",
                     model_id="pitch-stand-in", embedding_dim=256)
    (out / MODEL_JSON).write_text(json.dumps(info.to_json()))
    return out
