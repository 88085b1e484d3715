"""`DatasetMeta`: the one reader and writer of OUT/dataset.json (the builder's record of a dataset).

finalize writes it; preprocess, the trainer, its export, the benchmarks and the tests read it through
this type, never through literal key paths. No Beam; remote paths are read with tf.io.gfile, imported
only for them. Field meanings: ARCHITECTURE.md, "Contracts".
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Mapping, Tuple

from pipelines import schema
from pipelines.config import BuildConfig
from pipelines.paths import join, read_text
from pipelines.schema import FeatureConfig


class DatasetError(ValueError):
    """A folder that is not a readable dataset; the message says what to run."""


def _known(cls, data: Mapping[str, Any]) -> Dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    examples: int = 0
    shards: int = 0
    files: Tuple[str, ...] = ()
    shard_examples: Tuple[int, ...] = ()  # examples in each of `files`, in order (empty: an older dataset.json)
    seconds: float = 0.0  # segment length x examples (padding included)
    speech_seconds: float = 0.0  # real samples only
    speakers: int = 0
    recordings: int = 0
    bytes_uncompressed: int = 0

    @classmethod
    def from_json(cls, data: Mapping) -> "SplitInfo":
        fields = _known(cls, data)
        fields["files"] = tuple(fields.get("files", ()))
        fields["shard_examples"] = tuple(int(n) for n in fields.get("shard_examples", ()))
        return cls(**fields)

    def to_json(self) -> Dict:
        return {**dataclasses.asdict(self), "files": list(self.files), "shard_examples": list(self.shard_examples)}


@dataclasses.dataclass(frozen=True)
class Counts:
    """Every input accounted for: inputs = recordings_with_segments + rejected."""

    inputs: int = 0
    recordings_with_segments: int = 0
    rejected: int = 0
    rejected_by_reason: Mapping[str, int] = dataclasses.field(default_factory=dict)
    rejected_by_stage: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def add_up(self) -> bool:
        return self.inputs == self.recordings_with_segments + self.rejected

    @classmethod
    def from_json(cls, data: Mapping) -> "Counts":
        return cls(**_known(cls, data))

    def to_json(self) -> Dict:
        return {**dataclasses.asdict(self), "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
                "rejected_by_stage": dict(sorted(self.rejected_by_stage.items())), "add_up": self.add_up}


@dataclasses.dataclass(frozen=True)
class SplitAudit:
    """The split property proven from the written shards (pipelines.finalize.split_audit)."""

    split_by: str = "recording"
    property: str = ""
    holds: bool = False
    recordings: int = 0
    speakers: int = 0
    recordings_in_more_than_one_split: int = 0
    speakers_in_more_than_one_split: int = 0
    speakers_missing_from_train: int = 0
    groups_in_more_than_one_split: int = 0
    audio_in_more_than_one_split: int = 0  # the same decoded audio (sha256 of the PCM) under ids in two splits
    examples: Mapping[str, List[str]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping) -> "SplitAudit":
        return cls(**_known(cls, data))

    def to_json(self) -> Dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AuditSummary:
    """The acoustic audit in figures (OUT/audit.jsonl has one line per recording)."""

    ran: bool = False
    speaker_checks: bool = False  # with an --audit-model: one voice per recording, the right voice per speaker
    audit_model_id: str = ""
    recordings: int = 0
    verdicts: Mapping[str, int] = dataclasses.field(default_factory=dict)  # keep / flag / reject
    reasons: Mapping[str, int] = dataclasses.field(default_factory=dict)
    speakers_checked: int = 0  # speakers with enough recordings for speaker_mismatch
    speakers_with_findings: int = 0  # speakers with any flagged or rejected recording

    @classmethod
    def from_json(cls, data: Mapping) -> "AuditSummary":
        return cls(**_known(cls, data))

    def to_json(self) -> Dict:
        return {**dataclasses.asdict(self), "verdicts": dict(sorted(self.verdicts.items())),
                "reasons": dict(sorted(self.reasons.items()))}


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    name: str
    config: BuildConfig
    feature_config: FeatureConfig
    splits: Mapping[str, SplitInfo]
    counts: Counts
    split_audit: SplitAudit
    num_speakers: int = 0
    num_train_speakers: int = 0
    decoded_seconds: float = 0.0
    speech_seconds: float = 0.0
    code_version: str = ""
    decoder_build: str = ""  # e.g. "PyAV 18.1.0 (FFmpeg 8.1.2)": the same build decodes the same samples
    audit: AuditSummary = AuditSummary()

    # -- what the readers need ---------------------------------------------------------------------
    @property
    def features(self) -> Tuple[str, ...]:
        return tuple(self.config.features)

    @property
    def gzip(self) -> bool:
        return self.config.gzip

    @property
    def split_by(self) -> str:
        return self.config.split_by

    def feature_shapes(self) -> Dict[str, Tuple[int, ...]]:
        shapes = self.feature_config.shapes()
        return {k: tuple(shapes[k]) for k in self.features}

    def split(self, name: str) -> SplitInfo:
        return self.splits.get(name) or SplitInfo()

    def examples(self, split: str) -> int:
        return self.split(split).examples

    def files(self, dataset_dir: str, split: str) -> List[str]:
        """Paths of a split's shards under `dataset_dir` (local or gs://)."""
        return [join(dataset_dir, name) for name in self.split(split).files]

    # -- JSON ------------------------------------------------------------------------------------------
    def to_json(self) -> Dict[str, Any]:
        features = list(self.features)
        return {
            "name": self.name,
            "code_version": self.code_version,
            "decoder_build": self.decoder_build,
            "config": self.config.to_json(),
            "features": features,
            "feature_config": self.feature_config.to_json(),
            "feature_shapes": {k: list(v) for k, v in self.feature_shapes().items()},
            "feature_dtypes": {k: ("int16" if k == schema.AUDIO else "float32") for k in features},
            "sample_rate": schema.SAMPLE_RATE,
            "splits": {s: self.split(s).to_json() for s in schema.SPLITS},
            "num_speakers": self.num_speakers,
            "num_train_speakers": self.num_train_speakers,
            "counts": self.counts.to_json(),
            "split_audit": self.split_audit.to_json(),
            "decoded_seconds": self.decoded_seconds,
            "speech_seconds": self.speech_seconds,
            "audit": self.audit.to_json(),
        }

    def to_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "DatasetMeta":
        try:
            config = BuildConfig.from_json(data["config"])
            if "features" in data:  # the top-level list is what the shards hold
                config = dataclasses.replace(config, features=tuple(data["features"]))
            return cls(
                name=str(data.get("name", "")), code_version=str(data.get("code_version", "")), config=config,
                decoder_build=str(data.get("decoder_build", "")),
                feature_config=FeatureConfig.from_json(data["feature_config"]),
                splits={s: SplitInfo.from_json(v) for s, v in data.get("splits", {}).items()},
                counts=Counts.from_json(data.get("counts", {})),
                split_audit=SplitAudit.from_json(data.get("split_audit", {})),
                num_speakers=int(data.get("num_speakers", 0)),
                num_train_speakers=int(data.get("num_train_speakers", 0)),
                decoded_seconds=float(data.get("decoded_seconds", 0.0)),
                speech_seconds=float(data.get("speech_seconds", 0.0)),
                audit=AuditSummary.from_json(data.get("audit") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DatasetError(f"unreadable {schema.DATASET_JSON} ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_text(cls, text: str) -> "DatasetMeta":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise DatasetError(f"{schema.DATASET_JSON} is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DatasetError(f"{schema.DATASET_JSON} is not a JSON object")
        return cls.from_json(data)

    @classmethod
    def read(cls, dataset_dir: str) -> "DatasetMeta":
        """The dataset.json of a folder written by pipelines.build_dataset; DatasetError otherwise."""
        path = join(dataset_dir, schema.DATASET_JSON)
        try:
            text = read_text(path)
        except FileNotFoundError:
            raise DatasetError(f"{dataset_dir} holds no {schema.DATASET_JSON}; point it at a folder written by "
                               "python -m pipelines.build_dataset") from None
        try:
            return cls.from_text(text)
        except DatasetError as exc:
            raise DatasetError(f"{dataset_dir}: {exc}") from None
