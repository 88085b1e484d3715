"""Speaker embeddings of windows of speech, from any export of trainer.task (the acoustic audit's model).

An open-set export embeds a window of any length with its `embed` signature; a closed-set export embeds
segments of its own length with `serving_default` (its `embedding` output), so with one the window is the
export's segment length. TensorFlow is imported when an embedder is loaded (in the Beam worker's `setup`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from pipelines import process_lifecycle
from pipelines.model_info import ModelInfo, read_model_info

BATCH = 32


class WindowEmbedder:
    """`embed(windows)`: int16 windows (a list of equal-length arrays) -> unit embeddings [n, dim]."""

    def __init__(self, export_dir: str):
        self.export_dir = export_dir
        self.info: ModelInfo = read_model_info(export_dir)
        tf = process_lifecycle.import_tensorflow()
        self.tf = tf
        model = tf.saved_model.load(export_dir)
        self.model = model  # keeps the signatures' variables alive
        if "embed" in model.signatures:
            self.fn, self.fixed_samples = model.signatures["embed"], None
        elif "serving_default" in model.signatures:
            self.fn, self.fixed_samples = model.signatures["serving_default"], self.info.segment_samples
        else:
            raise ValueError(f"{export_dir} has no embedding signature")

    def window_samples(self, wanted: int) -> int:
        """The window length this export can embed: `wanted`, or a closed-set export's segment length."""
        return self.fixed_samples or wanted

    def embed(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        if not len(windows):
            return np.zeros((0, self.info.embedding_dim), np.float32)
        if self.fixed_samples is None:
            out = [self.fn(waveform=self.tf.constant(w.astype(np.float32) / 32768.0))["embedding"].numpy()
                   for w in windows]
            e = np.stack(out)
        else:
            parts = []
            for i in range(0, len(windows), BATCH):
                batch = np.stack([_fit(w, self.fixed_samples) for w in windows[i:i + BATCH]]).astype(np.float32)
                parts.append(self.fn(waveform=self.tf.constant(batch / 32768.0))["embedding"].numpy())
            e = np.concatenate(parts)
        e = e.astype(np.float64)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _fit(w: np.ndarray, n: int) -> np.ndarray:
    return w[:n] if w.size >= n else np.pad(w, (0, n - w.size))


def embed_speech(embedder: WindowEmbedder, checks, speech_samples: int,
                 read_window: Callable[[int, int], np.ndarray]):
    """The audit's measurement of one recording's speech (the builder's stage and the scrapers' early audit
    alike): (audit.VoiceCount, recording embedding, fingerprint) from the windows `audit.window_starts` picks,
    read with `read_window(start, samples)`."""
    from pipelines import audit

    window = embedder.window_samples(checks.window_samples)
    starts = audit.window_starts(speech_samples, window, checks)
    emb = embedder.embed([read_window(int(s), min(window, speech_samples)) for s in starts])
    return audit.count_voices(emb, checks), audit.recording_embedding(emb), audit.fingerprint(emb)
