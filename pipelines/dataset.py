"""The public loader: `load(OUT, "train")` -> a tf.data.Dataset of decoded examples with an integer label.

    from pipelines.dataset import load
    ds = load("OUT", "train[:10%]", features="log_mel", as_supervised=True)   # (log_mel [frames, mels], label)

Each element is a dict: the string keys of pipelines.schema (`id`, `speaker`, `recording`, …), `start_s`,
`source_start_s`, `sample_rate`, `num_valid_samples`, the chosen features decoded to float32 with their shapes
(`audio` in [-1, 1): the int16 samples / 32768) and `label` (int64). With `as_supervised`, `(x, label)` pairs:
x is the feature when one is chosen, a dict of them otherwise.

Labels come from speakers.tsv, the builder's record of the train split's vocabulary (its `label` column;
pipelines.finalize orders it as tf.Transform's vocabulary does, pipelines.schema.label_order, so the labels
equal the trainer's). A speaker absent from train (the validation and test speakers of an open-set
`--split-by speaker` dataset) gets label -1.

Splits slice like TensorFlow Datasets: `train[:10%]`, `train[10%:]`, `train[:200]`, `train[-50:]`, per example,
in shard order, with TFDS's rounding of percentages; a list of splits gives a list of datasets. Local and
gs:// paths alike (tf.io.gfile); no Beam; TensorFlow is imported when a dataset is made.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

from pipelines import schema
from pipelines.dataset_meta import DatasetMeta
from pipelines.paths import join, read_text
from pipelines.transform_output import LABEL

log = logging.getLogger(__name__)

UNKNOWN_LABEL = -1  # a speaker with no train segments
_SPLIT_RE = re.compile(r"^(?P<name>[A-Za-z_]+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")
_SPLIT_HELP = "e.g. train, train[:10%], train[10%:], train[:200]"


@dataclasses.dataclass(frozen=True)
class SpeakerRow:
    """One line of speakers.tsv: the speaker key, its name, its label (-1 when not in train)."""

    speaker: str
    name: str
    label: int


def read_speakers(dataset_dir: str) -> List[SpeakerRow]:
    """The rows of a dataset's speakers.tsv (pipelines.finalize.speakers_tsv); [] when it has none."""
    try:
        text = read_text(join(dataset_dir, schema.SPEAKERS_TSV))
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    if header[:3] != ["speaker", "name", "label"]:
        raise ValueError(f"{join(dataset_dir, schema.SPEAKERS_TSV)} does not start with speaker, name, label")
    rows = []
    for line in lines[1:]:
        cols = line.split("\t")
        if len(cols) >= 3:
            rows.append(SpeakerRow(cols[0], cols[1], int(cols[2])))
    return rows


def speaker_labels(dataset_dir: str) -> Dict[str, int]:
    """Train speaker key -> label (0 … train speakers - 1), from speakers.tsv."""
    return {r.speaker: r.label for r in read_speakers(dataset_dir) if r.label >= 0}


@dataclasses.dataclass(frozen=True)
class SplitSlice:
    """A split and the example range [start, stop) of it that a split string names."""

    split: str
    start: int
    stop: int


def parse_split(text: str, meta: DatasetMeta) -> SplitSlice:
    """`train[:10%]` -> SplitSlice("train", 0, round(10 % of its examples)); ValueError naming the choices."""
    m = _SPLIT_RE.match(text.strip()) if isinstance(text, str) else None
    if not m or m.group("name") not in schema.SPLITS:
        raise ValueError(f"unknown split {text!r}: choose from {', '.join(schema.SPLITS)}, sliced or not "
                         f"({_SPLIT_HELP})")
    n = meta.examples(m.group("name"))

    def bound(value: Optional[str], default: int) -> int:
        if value is None:
            return default
        if value.endswith("%"):
            pct = int(value[:-1])
            if not -100 <= pct <= 100:
                raise ValueError(f"split {text!r}: a percentage lies between -100% and 100%")
            at = int(round(pct * n / 100.0))  # TFDS's default ("closest") rounding
        else:
            at = int(value)
        if at < 0:
            at += n
        return max(0, min(n, at))

    start, stop = bound(m.group("start"), 0), bound(m.group("stop"), n)
    return SplitSlice(m.group("name"), start, max(start, stop))


def shard_ranges(meta: DatasetMeta, dataset_dir: str, part: SplitSlice) -> Optional[List[Tuple[str, int, int]]]:
    """(file, skip, take) per shard holding examples of `part`; None when dataset.json lacks per-shard counts."""
    info = meta.split(part.split)
    files = meta.files(dataset_dir, part.split)
    lengths = info.shard_examples or ((info.examples,) if len(files) == 1 else ())
    if len(lengths) != len(files):
        return None
    ranges, first = [], 0
    for path, count in zip(files, lengths):
        lo, hi = max(part.start, first), min(part.stop, first + count)
        if lo < hi:
            ranges.append((path, lo - first, hi - lo))
        first += count
    return ranges


def choose_features(meta: DatasetMeta, features: Union[None, str, Sequence[str]]) -> Tuple[str, ...]:
    """The stored features to decode (None: all of them); ValueError naming what the dataset holds."""
    if features is None:
        return meta.features
    names = (features,) if isinstance(features, str) else tuple(features)
    bad = [f for f in names if f not in meta.features]
    if bad or not names:
        raise ValueError(f"feature(s) {', '.join(map(repr, bad)) or '(none given)'} not stored in this dataset: "
                         f"choose from {', '.join(meta.features)}")
    return tuple(f for f in meta.features if f in names)


def load(path: str, split: Union[str, Sequence[str]], features: Union[None, str, Sequence[str]] = None,
         as_supervised: bool = False, shuffle_files: bool = False, seed: Optional[int] = None):
    """A tf.data.Dataset of one split (slice) of the dataset at `path`, or a list of them for a list of splits.

    `features`: a name or names among those stored (dataset.json `features`); None: all. `shuffle_files`
    reads the shards in a random order (seeded by `seed`) and interleaves them; otherwise examples come in
    shard order, deterministically. ValueError (one line) for a folder that is not a dataset, an unknown
    split or feature.
    """
    if isinstance(split, (list, tuple)):
        return [load(path, s, features, as_supervised, shuffle_files, seed) for s in split]
    meta = DatasetMeta.read(path)  # DatasetError, a ValueError, for a folder that is not a dataset
    names = choose_features(meta, features)
    part = parse_split(split, meta)
    return _make_dataset(path, meta, part, names, speaker_labels(path), as_supervised, shuffle_files, seed)


def _make_dataset(path: str, meta: DatasetMeta, part: SplitSlice, names: Tuple[str, ...], labels: Dict[str, int],
                  as_supervised: bool, shuffle_files: bool, seed: Optional[int]):
    import tensorflow as tf

    compression = "GZIP" if meta.gzip else ""
    ranges = shard_ranges(meta, path, part)
    if ranges is None:  # an older dataset.json: slice the concatenation of the shards, in order
        if shuffle_files and (part.start, part.stop) != (0, meta.examples(part.split)):
            log.warning("%s: dataset.json has no per-shard counts; a sliced split is read in shard order", path)
            shuffle_files = False
        files = meta.files(path, part.split)
        ranges = [(f, 0, -1) for f in files]
        ds = _read(tf, ranges, compression, shuffle_files, seed).skip(part.start).take(part.stop - part.start)
    else:
        ds = _read(tf, ranges, compression, shuffle_files, seed)

    keys = list(labels)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string),
                                            tf.constant([labels[k] for k in keys], tf.int64)),
        default_value=UNKNOWN_LABEL)
    config = meta.feature_config

    def decode(serialized):
        example = schema.parse_example(serialized, config, names)
        example[LABEL] = table.lookup(example[schema.SPEAKER])
        if not as_supervised:
            return example
        x = example[names[0]] if len(names) == 1 else {k: example[k] for k in names}
        return x, example[LABEL]

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle_files)


def _read(tf, ranges: List[Tuple[str, int, int]], compression: str, shuffle_files: bool, seed: Optional[int]):
    """Serialized examples of every (file, skip, take), in order or with the files shuffled and interleaved."""
    if not ranges:
        return tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))
    files = tf.data.Dataset.from_tensor_slices((tf.constant([r[0] for r in ranges], tf.string),
                                                tf.constant([r[1] for r in ranges], tf.int64),
                                                tf.constant([r[2] for r in ranges], tf.int64)))

    def records(f, skip, take):
        return tf.data.TFRecordDataset(f, compression_type=compression).skip(skip).take(take)

    if not shuffle_files:
        return files.flat_map(records)
    files = files.shuffle(len(ranges), seed=seed, reshuffle_each_iteration=True)
    return files.interleave(records, cycle_length=min(16, len(ranges)), num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=False)
