"""Open-set training: a speaker embedder learnt on the train speakers of a speaker-disjoint dataset
(`build_dataset --split-by speaker`), judged by verification on speakers it never saw.

- Front end: log-mel of the raw waveform (pipelines.features, the dataset's own definition), normalised per
  bin with the train split's tf.Transform statistics, then per utterance over time (mean removal).
- Training crops: `--crop-segments` segments of one speaker joined along time (1-s segments -> 2-3 s crops,
  cut to a random length per batch), with real background noise mixed at a random SNR and speed
  perturbation (each speed a speaker of its own, as in Kaldi's recipes); an additive angular margin softmax.
- Validation and test: every pair of 3-second chunks (consecutive segments of one recording) is a trial;
  EER and minDCF (p_target 0.01); the best checkpoint and early stopping follow validation EER; adaptive
  s-norm against a cohort of train speakers is kept when it helps on validation.
"""
from __future__ import annotations

import collections
import dataclasses
import io
import logging
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from pipelines import schema
from pipelines.dataset_meta import DatasetMeta
from pipelines.features import compute_features
from pipelines.schema import FeatureConfig
from trainer.augment import spec_augment
from trainer.verification import Cohort, evaluate_trials

log = logging.getLogger(__name__)

CHUNK_SECONDS = 3.0
MAX_CHUNKS_PER_RECORDING = 20
SPEEDS = (1.0, 0.9, 1.1)  # the first is the original: its classes are the train speakers themselves


# ---------------------------------------------------------------------------------------------
# Front end: waveform -> normalised log-mel
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """Raw 16 kHz float waveforms [batch, samples] -> normalised log-mel [batch, frames, mels]."""

    config: FeatureConfig
    mean: np.ndarray  # per mel bin, from the train split (tf.Transform)
    std: np.ndarray
    utterance_mean: bool = True  # remove each utterance's mean over time (cepstral mean normalisation)

    def __call__(self, audio: tf.Tensor) -> tf.Tensor:
        x = compute_features(audio, self.config, [schema.LOG_MEL])[schema.LOG_MEL]
        x = (x - tf.constant(self.mean, tf.float32)) / tf.constant(self.std, tf.float32)
        if self.utterance_mean:
            x = x - tf.reduce_mean(x, axis=1, keepdims=True)
        return x


def front_end_from_transform(tft_output, config: FeatureConfig, utterance_mean: bool = True) -> FrontEnd:
    from pipelines.transform_output import EPSILON, normalization_statistics

    mean, var = normalization_statistics(tft_output, schema.LOG_MEL)
    return FrontEnd(config, mean.astype(np.float32), np.sqrt(var + EPSILON).astype(np.float32), utterance_mean)


# ---------------------------------------------------------------------------------------------
# Chunks for verification trials
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Chunks:
    """Contiguous pieces of recordings: waveforms [n, samples] and who and where they come from."""

    waves: np.ndarray
    speakers: List[str]
    recordings: List[str]

    def __len__(self) -> int:
        return len(self.speakers)


def read_segments(files: Sequence[str], meta: DatasetMeta, keep_per_recording: Optional[int] = None
                  ) -> Dict[str, Tuple[str, str, List[Tuple[int, np.ndarray]]]]:
    """{recording id: (speaker, recording key, [(start sample, int16 audio)])} of a split, read with tf.data.
    With `keep_per_recording`, only segments whose position in the recording is below it are kept (memory
    bounded by speakers x that many segments, whatever the split's size)."""
    spec = {k: v for k, v in schema.feature_spec([schema.AUDIO]).items()
            if k in (schema.AUDIO, schema.ID, schema.SPEAKER, schema.RECORDING, schema.START_S,
                     schema.NUM_VALID_SAMPLES)}
    seg = meta.feature_config.segment_samples
    hop = meta.config.hop_samples
    ds = tf.data.TFRecordDataset(list(files), compression_type="GZIP" if meta.gzip else "")
    ds = ds.batch(256).map(lambda s: tf.io.parse_example(s, spec))
    out: Dict[str, Tuple[str, str, List]] = {}
    for batch in ds.as_numpy_iterator():
        for i in range(len(batch[schema.ID])):
            if batch[schema.NUM_VALID_SAMPLES][i] < seg:
                continue  # a padded tail is not contiguous speech
            start = int(round(float(batch[schema.START_S][i]) * schema.SAMPLE_RATE))
            if keep_per_recording is not None and start // hop >= keep_per_recording:
                continue
            seg_id = batch[schema.ID][i].decode("utf-8")
            rec_id = seg_id.rsplit("-", 1)[0]
            entry = out.setdefault(rec_id, (batch[schema.SPEAKER][i].decode("utf-8"),
                                            batch[schema.RECORDING][i].decode("utf-8"), []))
            entry[2].append((start, np.frombuffer(batch[schema.AUDIO][i], "<i2")))
    return out


def make_chunks(segments: Dict[str, Tuple[str, str, List[Tuple[int, np.ndarray]]]], segment_samples: int,
                chunk_seconds: float = CHUNK_SECONDS, max_per_recording: int = MAX_CHUNKS_PER_RECORDING) -> Chunks:
    """Non-overlapping chunks of `chunk_seconds` made of consecutive segments of one recording."""
    chunk = int(round(chunk_seconds * schema.SAMPLE_RATE))
    need = math.ceil(chunk / segment_samples)
    waves, speakers, recordings = [], [], []
    for rec_id in sorted(segments):
        speaker, recording, parts = segments[rec_id]
        parts.sort(key=lambda p: p[0])
        run: List[np.ndarray] = []
        last = None
        made = 0
        for start, pcm in parts:
            if last is not None and start != last + segment_samples:
                run = []  # a gap: chunks never span it
            run.append(pcm)
            last = start
            if len(run) == need:
                waves.append(np.concatenate(run)[:chunk].astype(np.float32) / 32768.0)
                speakers.append(speaker)
                recordings.append(recording)
                run, made = [], made + 1
                if made >= max_per_recording:
                    break
    return Chunks(np.stack(waves) if waves else np.zeros((0, chunk), np.float32), speakers, recordings)


def split_chunks(files: Sequence[str], meta: DatasetMeta, chunk_seconds: float = CHUNK_SECONDS,
                 max_per_recording: int = MAX_CHUNKS_PER_RECORDING) -> Chunks:
    seg = meta.feature_config.segment_samples
    per_chunk = math.ceil(chunk_seconds * schema.SAMPLE_RATE / seg)
    segments = read_segments(files, meta, keep_per_recording=per_chunk * max_per_recording
                             * max(1, seg // max(1, meta.config.hop_samples)))
    return make_chunks(segments, seg, chunk_seconds, max_per_recording)


def embed_waves(embedder, front_end: FrontEnd, waves: np.ndarray, batch: int = 32) -> np.ndarray:
    """Embeddings [n, dim] of equal-length waveforms [n, samples]."""
    out = []
    for i in range(0, len(waves), batch):
        x = front_end(tf.constant(waves[i:i + batch]))
        out.append(embedder(x, training=False).numpy())
    return np.concatenate(out) if out else np.zeros((0, embedder.output_shape[-1]), np.float32)


# ---------------------------------------------------------------------------------------------
# Training input: crops of several segments of one speaker, augmented
# ---------------------------------------------------------------------------------------------
def speaker_table(vocab: Sequence[str]) -> tf.lookup.StaticHashTable:
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(list(vocab)), tf.range(len(vocab), dtype=tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=-1)


def random_crop(audio: tf.Tensor, min_samples: int) -> tf.Tensor:
    """One random length in [min_samples, full] for the whole batch, a random offset per example."""
    full = tf.shape(audio)[1]
    length = tf.random.uniform([], min_samples, full + 1, dtype=tf.int32)
    offsets = tf.random.uniform([tf.shape(audio)[0]], 0, full - length + 1, dtype=tf.int32)
    index = offsets[:, None] + tf.range(length)[None, :]
    return tf.gather(audio, index, batch_dims=1)


def mix_noise_snr(audio: tf.Tensor, noise_bank: tf.Tensor, snr_low: float, snr_high: float,
                  probability: float) -> tf.Tensor:
    """Real background noise at a random SNR (dB) per example, on a share `probability` of the examples."""
    batch, length = tf.shape(audio)[0], tf.shape(audio)[1]
    idx = tf.random.uniform([batch], 0, tf.shape(noise_bank)[0], dtype=tf.int32)
    noise = tf.gather(noise_bank, idx)
    reps = length // tf.shape(noise_bank)[1] + 1
    noise = tf.tile(noise, [1, reps])[:, :length]
    snr = tf.random.uniform([batch], snr_low, snr_high)
    power = lambda x: tf.reduce_mean(tf.square(x), axis=1) + 1e-10  # noqa: E731
    gain = tf.sqrt(power(audio) / (power(noise) * tf.pow(10.0, snr / 10.0)))
    on = tf.cast(tf.random.uniform([batch]) < probability, tf.float32)
    return audio + noise * (gain * on)[:, None]


def mix_babble(audio: tf.Tensor, snr_low: float, snr_high: float, probability: float) -> tf.Tensor:
    """Another example of the batch (most likely another speaker) mixed in quietly: babble noise made from
    the dataset itself, so no noise files are needed."""
    batch = tf.shape(audio)[0]
    other = tf.roll(audio, shift=1, axis=0)
    snr = tf.random.uniform([batch], snr_low, snr_high)
    power = lambda x: tf.reduce_mean(tf.square(x), axis=1) + 1e-10  # noqa: E731
    gain = tf.sqrt(power(audio) / (power(other) * tf.pow(10.0, snr / 10.0)))
    on = tf.cast(tf.random.uniform([batch]) < probability, tf.float32)
    return audio + other * (gain * on)[:, None]


def reverberate(audio: tf.Tensor, probability: float, max_seconds: float = 0.4) -> tf.Tensor:
    """A synthetic room: convolution with an exponentially decaying noise tail (RT60 0.2-0.8 s) after the
    direct sound, energy kept, on a share `probability` of the examples."""
    batch, length = tf.shape(audio)[0], tf.shape(audio)[1]
    taps = int(max_seconds * schema.SAMPLE_RATE)
    t = tf.range(taps, dtype=tf.float32) / schema.SAMPLE_RATE
    rt60 = tf.random.uniform([batch, 1], 0.2, 0.8)
    tail = tf.random.normal([batch, taps]) * tf.exp(-6.9 * t[None, :] / rt60)  # -60 dB at rt60
    rir = tf.concat([tf.ones([batch, 1]), 0.3 * tail[:, 1:]], axis=1)
    n = length + taps
    size = tf.cast(2 ** tf.math.ceil(tf.math.log(tf.cast(n, tf.float32)) / math.log(2.0)), tf.int32)
    wet = tf.signal.irfft(tf.signal.rfft(audio, [size]) * tf.signal.rfft(rir, [size]), [size])[:, :length]
    wet *= tf.sqrt(tf.reduce_mean(tf.square(audio), 1, keepdims=True) /
                   (tf.reduce_mean(tf.square(wet), 1, keepdims=True) + 1e-10))
    on = tf.cast(tf.random.uniform([batch, 1]) < probability, tf.float32)
    return on * wet + (1 - on) * audio


def change_speed(audio: tf.Tensor, factor: float) -> tf.Tensor:
    """Resample by `factor` (tempo and pitch, as sox `speed`): linear interpolation."""
    if factor == 1.0:
        return audio
    n = tf.shape(audio)[1]
    m = tf.cast(tf.math.floor(tf.cast(n, tf.float32) / factor), tf.int32)
    pos = tf.cast(tf.range(m), tf.float32) * factor
    lo = tf.minimum(tf.cast(tf.floor(pos), tf.int32), n - 1)
    hi = tf.minimum(lo + 1, n - 1)
    frac = pos - tf.cast(lo, tf.float32)
    return tf.gather(audio, lo, axis=1) * (1 - frac) + tf.gather(audio, hi, axis=1) * frac


@dataclasses.dataclass(frozen=True)
class CropConfig:
    segments_per_crop: int = 3
    min_crop_seconds: float = 2.0
    noise_snr: Tuple[float, float] = (0.0, 15.0)
    noise_probability: float = 0.6
    speed_perturb: bool = True
    speeds: Tuple[float, ...] = SPEEDS
    babble_probability: float = 0.0  # another speaker of the batch mixed in at 13-20 dB SNR
    reverb_probability: float = 0.0  # a synthetic room
    spec_augment: bool = False  # time and frequency masks on the normalised log-mel


def crop_dataset(files: Sequence[str], meta: DatasetMeta, vocab: Sequence[str], front_end: FrontEnd,
                 batch_size: int, crops: CropConfig, noise_bank: Optional[np.ndarray], seed: int) -> tf.data.Dataset:
    """((features, labels), labels) batches for the margin trainer, endlessly."""
    spec = {k: v for k, v in schema.feature_spec([schema.AUDIO]).items() if k in (schema.AUDIO, schema.SPEAKER)}
    table = speaker_table(vocab)
    seg = meta.feature_config.segment_samples
    n = crops.segments_per_crop
    num_speakers = len(vocab)
    noise = tf.constant(noise_bank, tf.float32) if noise_bank is not None else None

    def parse(serialized):
        parsed = tf.io.parse_single_example(serialized, spec)
        audio = tf.cast(tf.io.decode_raw(parsed[schema.AUDIO], tf.int16), tf.float32) / 32768.0
        return tf.reshape(audio, [seg]), table.lookup(parsed[schema.SPEAKER])

    ds = tf.data.Dataset.from_tensor_slices(list(files)).repeat()
    ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP" if meta.gzip else ""),
                       cycle_length=min(8, max(1, len(files))), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=False)
    ds = ds.shuffle(8192, seed=seed).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.filter(lambda a, y: y >= 0)
    ds = ds.group_by_window(key_func=lambda a, y: y, window_size=n,
                            reduce_func=lambda key, w: w.batch(n, drop_remainder=True))
    ds = ds.map(lambda a, y: (tf.reshape(a, [n * seg]), y[0]))
    ds = ds.shuffle(512, seed=seed).batch(batch_size, drop_remainder=True)

    def augment(audio, labels):
        audio = random_crop(audio, min(n * seg, int(crops.min_crop_seconds * schema.SAMPLE_RATE)))
        if crops.reverb_probability > 0:
            audio = reverberate(audio, crops.reverb_probability)
        if crops.babble_probability > 0:
            audio = mix_babble(audio, 13.0, 20.0, crops.babble_probability)
        if noise is not None:
            audio = mix_noise_snr(audio, noise, *crops.noise_snr, crops.noise_probability)
        if crops.speed_perturb:
            k = tf.random.uniform([], 0, len(crops.speeds), dtype=tf.int32)
            branches = [lambda f=f: change_speed(audio, f) for f in crops.speeds]
            audio = tf.switch_case(k, branches)
            labels = labels + tf.cast(k, tf.int64) * num_speakers  # another speed: another speaker
        gain = tf.pow(10.0, tf.random.uniform([tf.shape(audio)[0], 1], -6.0, 6.0) / 20.0)
        x = front_end(audio * gain)
        if crops.spec_augment:
            x = spec_augment(x, freq_masks=1, freq_width=8, time_masks=1, time_width=20)
        return (x, labels), labels

    return ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def num_classes(vocab: Sequence[str], crops: CropConfig) -> int:
    return len(vocab) * (len(crops.speeds) if crops.speed_perturb else 1)


# ---------------------------------------------------------------------------------------------
# Validation by verification; the cohort for score normalisation
# ---------------------------------------------------------------------------------------------
class VerificationCallback:
    """Keras callback factory: validation EER and minDCF after each epoch, in the logs as val_eer/val_min_dcf."""

    @staticmethod
    def make(embedder, front_end: FrontEnd, chunks: Chunks):
        import tf_keras as keras

        class Verification(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                result = evaluate_trials(embed_waves(embedder, front_end, chunks.waves), chunks.speakers,
                                         chunks.recordings)
                if logs is not None:
                    logs["val_eer"] = result["eer"]
                    logs["val_min_dcf"] = result["min_dcf"]
                log.info("epoch %d: validation EER %.4f, minDCF %.4f (%d target / %d non-target trials)", epoch + 1,
                         result["eer"], result["min_dcf"], result["num_target_trials"],
                         result["num_nontarget_trials"])

        return Verification()


def speaker_means(embeddings: np.ndarray, speakers: Sequence[str]) -> Tuple[List[str], np.ndarray]:
    """Unit-length mean embedding per speaker (the cohort of s-norm, a gallery's centroids)."""
    groups: Dict[str, List[int]] = collections.defaultdict(list)
    for i, s in enumerate(speakers):
        groups[s].append(i)
    names = sorted(groups)
    x = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    means = np.stack([x[groups[s]].mean(axis=0) for s in names])
    return names, means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def cohort_from_train(embedder, front_end: FrontEnd, files: Sequence[str], meta: DatasetMeta,
                      max_per_recording: int = 5) -> Cohort:
    chunks = split_chunks(files, meta, max_per_recording=max_per_recording)
    _, means = speaker_means(embed_waves(embedder, front_end, chunks.waves), chunks.speakers)
    return Cohort(means.astype(np.float32))


# ---------------------------------------------------------------------------------------------
# The open-set training run
# ---------------------------------------------------------------------------------------------
def train_and_evaluate(args, extra_callbacks: Optional[List] = None) -> Dict:
    """Train an embedder on the train speakers, pick the checkpoint by validation EER, evaluate verification
    on the test speakers, export. `args` come from trainer.task (validated there)."""
    import json

    import tf_keras as keras

    from pipelines.paths import join
    from pipelines.transform_output import speaker_vocabulary
    from trainer import export, job_page, summaries
    from trainer import model as model_lib
    from trainer.task import MIN_STEPS, fit_resumable
    from trainer.verification import calibrated_threshold, det_png

    keras.utils.set_random_seed(args.seed)
    meta: DatasetMeta = args.meta
    vocab = speaker_vocabulary(args.tft_output)
    front_end = front_end_from_transform(args.tft_output, meta.feature_config, utterance_mean=args.cmn)
    crops = CropConfig(segments_per_crop=args.crop_segments, min_crop_seconds=args.min_crop_seconds,
                       noise_snr=args.noise_snr, speed_perturb=args.speed_perturb, speeds=args.speeds,
                       babble_probability=args.babble, reverb_probability=args.reverb,
                       spec_augment=not args.no_spec_augment)
    files = {s: meta.files(args.data_dir, s) for s in schema.SPLITS}
    val = split_chunks(files["validation"], meta)
    test_split = "test" if meta.examples("test") else "validation"
    test = split_chunks(files[test_split], meta) if test_split == "test" else val
    log.info("validation: %d chunks of %g s from %d speakers; %s: %d chunks from %d speakers", len(val),
             CHUNK_SECONDS, len(set(val.speakers)), test_split, len(test), len(test.speakers and set(test.speakers)))
    noise = None
    if args.noise_dir and not args.no_augment:
        from trainer.augment import load_noise

        noise = load_noise(args.noise_dir, crops.segments_per_crop * meta.feature_config.segment_samples)
    if args.no_augment:
        crops = dataclasses.replace(crops, speed_perturb=False, babble_probability=0.0, reverb_probability=0.0,
                                    spec_augment=False)
    train_ds = crop_dataset(files["train"], meta, vocab, front_end, args.batch_size, crops, noise, args.seed)

    embedder = model_lib.speaker_embedder(args.model, meta.feature_config.num_mel_bins, args.embedding_dim,
                                          args.width)
    trainer_net = model_lib.margin_trainer(embedder, num_classes(vocab, crops), args.margin, args.scale)
    crop_s = crops.segments_per_crop * meta.feature_config.segment_samples / schema.SAMPLE_RATE
    steps = args.steps_per_epoch or max(MIN_STEPS, int(meta.split("train").speech_seconds / crop_s / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, decay_steps=steps * args.epochs,
                                                      alpha=0.02, warmup_target=None)
    trainer_net.compile(optimizer=keras.optimizers.Adam(schedule),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    job = args.job_dir
    history, train_seconds = fit_resumable(trainer_net, train_ds, args, steps, "val_eer",
                                           first=[VerificationCallback.make(embedder, front_end, val)],
                                           extra_callbacks=extra_callbacks)

    # score normalisation is kept when it helps on validation
    cohort = cohort_from_train(embedder, front_end, files["train"], meta)
    val_emb = embed_waves(embedder, front_end, val.waves)
    val_raw = evaluate_trials(val_emb, val.speakers, val.recordings)
    val_norm = evaluate_trials(val_emb, val.speakers, val.recordings, cohort)
    use_norm = val_norm["eer"] < val_raw["eer"]
    test_emb = embed_waves(embedder, front_end, test.waves)
    result = evaluate_trials(test_emb, test.speakers, test.recordings, cohort if use_norm else None)
    other = evaluate_trials(test_emb, test.speakers, test.recordings, None if use_norm else cohort)
    threshold = calibrated_threshold(result)
    identification_threshold = calibrated_threshold(result, "identification")
    curves = {f"{test_split} ({result['score_normalization']})": result["det"],
              f"{test_split} ({other['score_normalization']})": other["det"]}
    tf.io.gfile.makedirs(job)
    det = io.BytesIO()
    det_png(curves, det)
    with tf.io.gfile.GFile(join(job, "det.png"), "wb") as f:
        f.write(det.getvalue())
    summaries.write_test_summaries(job, test_split, {k: v for k, v in result.items() if k != "det"},
                                   det.getvalue(), "det", test_emb, test.speakers, test.recordings)
    summary = {k: v for k, v in result.items() if k != "det"}
    metrics = {
        test_split: {**summary, "threshold": threshold, "identification_threshold": identification_threshold,
                     "other_normalization": {k: other[k] for k in ("score_normalization", "eer", "min_dcf")},
                     "validation": {"eer": val_raw["eer"], "min_dcf": val_raw["min_dcf"],
                                    "eer_as_norm": val_norm["eer"], "min_dcf_as_norm": val_norm["min_dcf"]}},
        "training": {"mode": "open_set", "model": args.model, "feature": schema.LOG_MEL,
                     "epochs_run": len(history.history["loss"]), "seconds": round(train_seconds, 1),
                     "best_val_eer": float(np.nanmin(history.history.get("val_eer", [np.nan]))),
                     "margin": args.margin, "scale": args.scale, "crops": dataclasses.asdict(crops),
                     "noise_augmentation": noise is not None, "embedding_dim": args.embedding_dim,
                     "width": args.width, "utterance_mean": front_end.utterance_mean, "train_speakers": len(vocab),
                     "data_dir": args.data_dir, "seed": args.seed},
    }
    with tf.io.gfile.GFile(join(job, "metrics.json"), "w") as f:
        f.write(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    job_page.write_page(job)  # report.html: EER, minDCF, DET, curves
    export.export_embedder(embedder, trainer_net.get_layer("aam_softmax"), front_end, vocab, meta, args.export_dir,
                           cohort=cohort if use_norm else None, threshold=threshold, tflite=not args.no_tflite,
                           overwrite=args.overwrite, identification_threshold=identification_threshold)
    metrics["export_dir"] = args.export_dir
    log.info("%s: EER %.4f, minDCF %.4f (%s, %d/%d trials); export: %s", test_split, result["eer"],
             result["min_dcf"], result["score_normalization"], result["num_target_trials"],
             result["num_nontarget_trials"], args.export_dir)
    return metrics
