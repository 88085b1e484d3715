"""The evaluation in TensorBoard: the test split's metrics as scalars, its confusion matrix (closed set) or DET
curves (open set) as an image, and its embeddings in the projector, under JOB/logs/<split>/ beside the
train/ and validation/ runs Keras' TensorBoard callback writes.

    write_test_summaries(job_dir, "test", metrics, png_bytes, "confusion", embeddings, speakers, recordings)

Projector files: embedding checkpoint, metadata.tsv (a header row, then one row per point: speaker, split,
source, recording) and projector_config.pbtxt. At most MAX_PROJECTOR_POINTS points, taken evenly over the
split (deterministic).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np

from pipelines.paths import join

LOGS_DIR = "logs"
MAX_PROJECTOR_POINTS = 5000
METADATA_TSV = "metadata.tsv"
EMBEDDING_CKPT = "embedding.ckpt"
TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
METADATA_COLUMNS = ("speaker", "split", "source", "recording")


def log_dir(job_dir: str, split: str) -> str:
    return join(job_dir, LOGS_DIR, split)


def scalar_metrics(metrics: Mapping) -> dict:
    """The finite top-level numbers of a metrics dict (accuracy, macro_f1, eer, min_dcf, counts)."""
    out = {}
    for key, value in sorted(metrics.items()):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            continue
        if math.isfinite(float(value)):
            out[str(key)] = float(value)
    return out


def tsv_cell(value) -> str:
    """One metadata cell: tabs and line breaks (which would shift columns or rows) become spaces."""
    return " ".join(str(value).split()) or "-"


def source_of(speaker: str) -> str:
    """A speaker key is `<source>:<native id>` (the manifest contract)."""
    return speaker.split(":", 1)[0] if ":" in speaker else "-"


def even_sample(n: int, cap: int) -> np.ndarray:
    """Indices of at most `cap` points spread evenly over n (all of them when n <= cap)."""
    if n <= cap:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def write_projector(folder: str, embeddings: np.ndarray, speakers: Sequence[str], split: str,
                    recordings: Optional[Sequence[str]] = None, max_points: int = MAX_PROJECTOR_POINTS) -> int:
    """The embedding projector files in `folder`; returns the number of points written."""
    import tensorflow as tf
    from tensorboard.plugins import projector

    embeddings = np.asarray(embeddings, np.float32)
    if len(embeddings) != len(speakers) or (recordings is not None and len(recordings) != len(speakers)):
        raise ValueError(f"{len(embeddings)} embeddings for {len(speakers)} speakers")
    keep = even_sample(len(embeddings), max_points)
    tf.io.gfile.makedirs(folder)
    rows = ["\t".join(METADATA_COLUMNS)]
    for i in keep:
        speaker = str(speakers[i])
        rows.append("\t".join(tsv_cell(v) for v in (speaker, split, source_of(speaker),
                                                      recordings[i] if recordings is not None else "-")))
    with tf.io.gfile.GFile(join(folder, METADATA_TSV), "w") as f:
        f.write("\n".join(rows) + "\n")
    # the plugin finds the newest checkpoint of the folder (its `checkpoint` file); one is kept
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(embeddings[keep]))
    tf.train.CheckpointManager(checkpoint, folder, max_to_keep=1, checkpoint_name=EMBEDDING_CKPT).save()
    config = projector.ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = TENSOR_NAME
    emb.metadata_path = METADATA_TSV
    projector.visualize_embeddings(folder, config)
    return len(keep)


def write_test_summaries(job_dir: str, split: str, metrics: Mapping, image_png: Optional[bytes] = None,
                         image_name: str = "confusion", embeddings: Optional[np.ndarray] = None,
                         speakers: Sequence[str] = (), recordings: Optional[Sequence[str]] = None,
                         max_points: int = MAX_PROJECTOR_POINTS) -> str:
    """Scalars `<split>/<metric>`, the image `<split>/<image_name>` and the projector in JOB/logs/<split>;
    returns that folder."""
    import tensorflow as tf

    folder = log_dir(job_dir, split)
    writer = tf.summary.create_file_writer(folder)
    with writer.as_default():
        for name, value in scalar_metrics(metrics).items():
            tf.summary.scalar(f"{split}/{name}", value, step=0)
        if image_png:
            image = tf.image.decode_png(image_png, channels=4)
            tf.summary.image(f"{split}/{image_name}", image[tf.newaxis], step=0)
    writer.flush()
    writer.close()
    if embeddings is not None and len(speakers):
        write_projector(folder, embeddings, speakers, split, recordings, max_points)
    return folder


def tensorboard_command(job_dir: str) -> str:
    return f"tensorboard --logdir {join(job_dir, LOGS_DIR)}"
