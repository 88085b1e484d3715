"""`ModelInfo`: EXPORT_DIR/speaker_model.json, what a user of an export needs besides the graph (the dataset's
BuildConfig, the speakers, the thresholds). Written by trainer.export; read by the trainer's commands and by the
builder's acoustic audit (pipelines.embedding), so it lives in the contract layer. No TensorFlow.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Dict, Mapping, Optional, Tuple

from pipelines import schema
from pipelines.config import BuildConfig
from pipelines.paths import join, read_text

MODEL_JSON = "speaker_model.json"
MODEL_INFO_FORMAT = 2


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """EXPORT_DIR/speaker_model.json: what a user of the export needs besides the graph."""

    feature: str
    build_config: BuildConfig  # the dataset's settings: segment length, hop, silence stripping, features
    speakers: Tuple[str, ...]  # label order: entry i is the speaker of probability i
    speaker_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dataset: str = ""
    code_version: str = ""
    kind: str = "closed_set"  # or "open_set": an embedder with an `embed` signature, for enroll/verify
    model_id: str = ""  # a gallery enrolled with one export is refused by another (other embedding space)
    embedding_dim: int = 0
    threshold: Optional[float] = None  # verification decision (open set), calibrated on the test trials
    identification_threshold: Optional[float] = None  # predict --gallery's decision (None: `threshold`)
    score_normalization: str = "none"  # "as-norm": scores normalised against the cohort in COHORT_NPY

    @property
    def feature_config(self) -> schema.FeatureConfig:
        return self.build_config.feature_config

    @property
    def segment_samples(self) -> int:
        return self.build_config.segment_samples

    def name_of(self, speaker: str) -> str:
        return self.speaker_names.get(speaker, "")

    def to_json(self) -> Dict:
        cfg = self.build_config
        return {"format": MODEL_INFO_FORMAT, "sample_rate": schema.SAMPLE_RATE, "feature": self.feature,
                "segment_samples": cfg.segment_samples, "segment_seconds": cfg.segment_samples / schema.SAMPLE_RATE,
                "hop_seconds": cfg.hop_samples / schema.SAMPLE_RATE, "feature_config": self.feature_config.to_json(),
                "build_config": cfg.to_json(), "speakers": list(self.speakers),
                "speaker_names": dict(self.speaker_names), "dataset": self.dataset, "code_version": self.code_version,
                "kind": self.kind, "model_id": self.model_id, "embedding_dim": self.embedding_dim,
                "threshold": self.threshold, "identification_threshold": self.identification_threshold,
                "score_normalization": self.score_normalization}

    @classmethod
    def from_json(cls, data: Mapping) -> "ModelInfo":
        if "build_config" in data:
            config = BuildConfig.from_json(data["build_config"])
        else:  # format 1: the dataset's segment, hop and silence settings at the top level
            fcfg = schema.FeatureConfig.from_json(data["feature_config"])
            config = BuildConfig.from_json({"segment_seconds": data["segment_samples"] / schema.SAMPLE_RATE,
                                            "hop_seconds": data.get("hop_seconds"),
                                            "silence": data.get("silence") or {},
                                            "num_mel_bins": fcfg.num_mel_bins})
        return cls(feature=data["feature"], build_config=config, speakers=tuple(data["speakers"]),
                   speaker_names=dict(data.get("speaker_names") or {}), dataset=data.get("dataset") or "",
                   code_version=data.get("code_version") or "", kind=data.get("kind") or "closed_set",
                   model_id=data.get("model_id") or "", embedding_dim=int(data.get("embedding_dim") or 0),
                   threshold=data.get("threshold"), identification_threshold=data.get("identification_threshold"),
                   score_normalization=data.get("score_normalization") or "none")


def read_model_info(export_dir: str) -> ModelInfo:
    """The ModelInfo of an export folder (local or remote); OSError/ValueError/KeyError when it is not one."""
    return ModelInfo.from_json(json.loads(read_text(join(export_dir, MODEL_JSON))))
