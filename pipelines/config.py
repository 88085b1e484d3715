"""`BuildConfig`: every setting that decides a dataset's contents, in one frozen object.

Built once from the command line (pipelines.options), validated here, stored in dataset.json's
`config` block and read back from it by preprocess, the trainer, its export and trainer.predict.
Seconds become samples here and nowhere else (`segmentation`, `feature_config`). No Beam, no
TensorFlow: the trainer reads it too.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Optional, Tuple

from pipelines import schema
from pipelines.audit import AuditConfig
from pipelines.decode import DECODERS, DEFAULT_DECODER
from pipelines.schema import FeatureConfig
from pipelines.segments import PARTIAL_POLICIES, Segmentation, seconds_to_samples
from pipelines.silence import SilenceParams

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
LEGACY_DECODER = "ffmpeg"  # what decoded datasets whose dataset.json names no decoder


class ConfigError(ValueError):
    """A setting out of range; the message names the flag and is printed as one line."""


def parse_fractions(text: str) -> Tuple[float, float, float]:
    """`"0.8,0.1,0.1"` -> (train, validation, test); ConfigError unless three non-negative numbers summing to 1."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--split-fractions must be three numbers like 0.8,0.1,0.1, got {text!r}") from None
    if len(parts) != 3:
        raise ConfigError(f"--split-fractions must be three numbers like 0.8,0.1,0.1, got {text!r}")
    return parts  # type: ignore[return-value]


def parse_features(text: str) -> Tuple[str, ...]:
    """`"log_mel,audio"` -> the features in schema order; ConfigError for unknown names."""
    names = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in names if f not in schema.FEATURES]
    if not names or bad:
        raise ConfigError(f"--features: unknown {', '.join(bad) or '(none given)'}; "
                          f"choose from {', '.join(schema.FEATURES)}")
    return tuple(f for f in schema.FEATURES if f in names)


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """What `python -m pipelines.build_dataset` builds (input, segments, silence, caps, split, features,
    shards). Two builds with equal configs and inputs write the same bytes."""

    manifest: Optional[str] = None
    audio_dir: Optional[str] = None
    segment_seconds: float = 1.0
    hop_seconds: Optional[float] = None  # None: the segment length
    partial: str = "drop"
    silence: SilenceParams = SilenceParams()
    max_seconds_per_speaker: Optional[float] = None
    min_seconds_per_speaker: float = 0.0
    split_by: str = "recording"
    split_fractions: Tuple[float, float, float] = DEFAULT_FRACTIONS
    split_seed: str = "0"
    features: Tuple[str, ...] = schema.DEFAULT_FEATURES
    num_mel_bins: int = 64
    num_shards: Optional[int] = None
    shard_size_mb: float = 128.0
    gzip: bool = False
    decoder: str = DEFAULT_DECODER  # pipelines.decode.DECODERS: the same build of it decodes the same samples
    audit: AuditConfig = AuditConfig()  # the acoustic audit (pipelines.audit): policy, model, thresholds

    def __post_init__(self) -> None:
        """Lengths become whole samples (in seconds) at once, so a config read back from dataset.json equals
        the one that wrote it; values out of range are left for `validate` to name."""
        for name in ("segment_seconds", "hop_seconds"):
            value = getattr(self, name)
            if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
                object.__setattr__(self, name, seconds_to_samples(value) / schema.SAMPLE_RATE)
        object.__setattr__(self, "split_fractions", tuple(self.split_fractions))
        object.__setattr__(self, "features", tuple(self.features))

    # -- derived, in samples -------------------------------------------------------------------
    @property
    def segment_samples(self) -> int:
        return seconds_to_samples(self.segment_seconds)

    @property
    def hop_samples(self) -> int:
        return seconds_to_samples(self.segment_seconds if self.hop_seconds is None else self.hop_seconds)

    @property
    def max_samples_per_speaker(self) -> Optional[int]:
        return None if self.max_seconds_per_speaker is None else seconds_to_samples(self.max_seconds_per_speaker)

    @property
    def segmentation(self) -> Segmentation:
        return Segmentation(self.segment_samples, self.hop_samples, self.partial)

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(segment_samples=self.segment_samples, num_mel_bins=self.num_mel_bins)

    @property
    def shard_bytes(self) -> int:
        return int(self.shard_size_mb * 2 ** 20)

    # -- checks --------------------------------------------------------------------------------
    def validate(self) -> "BuildConfig":
        """ConfigError naming the flag for the first setting out of range; returns self."""
        if bool(self.manifest) == bool(self.audio_dir):
            raise ConfigError("give exactly one of --manifest or --audio-dir")
        if not self.segment_seconds > 0 or not math.isfinite(self.segment_seconds):
            raise ConfigError("--segment-seconds must be > 0")
        if self.segment_samples < 1:
            raise ConfigError("--segment-seconds is shorter than one sample")
        if self.hop_seconds is not None and not (self.hop_seconds >= 0.01 and math.isfinite(self.hop_seconds)):
            raise ConfigError("--hop-seconds must be at least 0.01")
        if self.partial not in PARTIAL_POLICIES:
            raise ConfigError(f"--partial must be one of {', '.join(PARTIAL_POLICIES)}")
        fr = self.split_fractions
        if len(fr) != 3 or any(not p >= 0 for p in fr) or abs(sum(fr) - 1.0) > 1e-6 or fr[0] <= 0:
            raise ConfigError("--split-fractions must be three non-negative numbers summing to 1 with train > 0, "
                              f"got {','.join(f'{p:g}' for p in fr)}")
        if self.split_by not in schema.SPLIT_BY:
            raise ConfigError(f"--split-by must be one of {', '.join(schema.SPLIT_BY)}")
        if not self.features or any(f not in schema.FEATURES for f in self.features):
            raise ConfigError(f"--features: choose from {', '.join(schema.FEATURES)}")
        if not self.min_seconds_per_speaker >= 0:
            raise ConfigError("--min-seconds-per-speaker must be >= 0")
        if self.max_seconds_per_speaker is not None:
            if not self.max_seconds_per_speaker >= self.segment_seconds:
                raise ConfigError("--max-seconds-per-speaker must be at least one segment")
            if self.max_seconds_per_speaker < self.min_seconds_per_speaker:
                raise ConfigError("--max-seconds-per-speaker is below --min-seconds-per-speaker")
        if self.num_shards is not None and self.num_shards < 1:
            raise ConfigError("--num-shards must be >= 1")
        if not self.shard_size_mb > 0 or self.num_mel_bins < 1:
            raise ConfigError("--shard-size-mb and --num-mel-bins must be positive")
        if self.decoder not in DECODERS:
            raise ConfigError(f"--decoder must be one of {', '.join(DECODERS)}")
        try:
            self.silence.validate()
            self.audit.validate()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return self

    # -- dataset.json ----------------------------------------------------------------------------
    def to_json(self) -> dict:
        """dataset.json's `config` block: lengths as whole samples in seconds, the hop always explicit."""
        return {
            "input": {"manifest": self.manifest, "audio_dir": self.audio_dir},
            "segment_seconds": self.segment_samples / schema.SAMPLE_RATE,
            "hop_seconds": self.hop_samples / schema.SAMPLE_RATE,
            "partial": self.partial,
            "silence": self.silence.to_json(),
            "max_seconds_per_speaker": self.max_seconds_per_speaker,
            "min_seconds_per_speaker": self.min_seconds_per_speaker,
            "split_by": self.split_by, "split_fractions": list(self.split_fractions), "split_seed": self.split_seed,
            "features": list(self.features), "num_mel_bins": self.num_mel_bins,
            "num_shards": self.num_shards, "shard_size_mb": self.shard_size_mb, "gzip": self.gzip,
            "decoder": self.decoder,
            "audit": self.audit.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "BuildConfig":
        """The inverse of `to_json`; settings a block lacks (an older dataset.json) take the defaults, except the
        decoder: a dataset.json without one was decoded by the ffmpeg command line, so predict decodes as it did."""
        default = cls()
        inputs = data.get("input") or {}
        segment = float(data.get("segment_seconds", default.segment_seconds))
        hop = None if data.get("hop_seconds") is None else float(data["hop_seconds"])
        if hop is not None and seconds_to_samples(hop) == seconds_to_samples(segment):
            hop = None  # to_json writes the default hop out; it is still the default
        max_s = data.get("max_seconds_per_speaker")
        shards = data.get("num_shards")
        return cls(
            manifest=inputs.get("manifest"), audio_dir=inputs.get("audio_dir"),
            segment_seconds=segment,
            hop_seconds=hop,
            partial=data.get("partial", default.partial),
            silence=SilenceParams.from_json(data.get("silence") or {}),
            max_seconds_per_speaker=None if max_s is None else float(max_s),
            min_seconds_per_speaker=float(data.get("min_seconds_per_speaker", default.min_seconds_per_speaker)),
            split_by=data.get("split_by", default.split_by),
            split_fractions=tuple(float(x) for x in data.get("split_fractions", default.split_fractions)),
            split_seed=str(data.get("split_seed", default.split_seed)),
            features=tuple(data.get("features", default.features)),
            num_mel_bins=int(data.get("num_mel_bins", default.num_mel_bins)),
            num_shards=None if shards is None else int(shards),
            shard_size_mb=float(data.get("shard_size_mb", default.shard_size_mb)),
            gzip=bool(data.get("gzip", default.gzip)),
            decoder=str(data.get("decoder", LEGACY_DECODER)),
            audit=AuditConfig.from_json(data.get("audit") or {}),
        )

    def differences(self, other: "BuildConfig") -> Tuple[str, ...]:
        """Names of the dataset.json `config` keys on which two configs disagree."""
        a, b = self.to_json(), other.to_json()
        return tuple(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))
