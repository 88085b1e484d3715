"""`Gallery`: enrolled speakers of one open-set export, as embedding statistics (no audio is kept).

A gallery file (JSON) holds, per enrolled speaker, the sum and count of the unit-length embeddings of the
files enrolled for them, and the names of those files; scoring compares a file's embedding with each
speaker's centroid by cosine (adaptive s-norm when the export uses it). A gallery belongs to the export
that made it (`model_id`): another export's embeddings live in another space and are refused.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from trainer.verification import Cohort, l2_normalize, score_matrix

GALLERY_FORMAT = 1


class GalleryError(ValueError):
    """A gallery that cannot be used with this export, or a file that is not a gallery; one line."""


@dataclasses.dataclass
class EnrolledSpeaker:
    name: str
    total: np.ndarray  # sum of unit-length embeddings
    count: int
    files: List[str] = dataclasses.field(default_factory=list)

    @property
    def centroid(self) -> np.ndarray:
        return l2_normalize(self.total / max(1, self.count))

    def to_json(self) -> Dict:
        return {"sum": [round(float(v), 7) for v in self.total], "count": self.count, "files": list(self.files)}

    @classmethod
    def from_json(cls, name: str, data: Mapping) -> "EnrolledSpeaker":
        return cls(name, np.asarray(data["sum"], np.float64), int(data["count"]), list(data.get("files", [])))


@dataclasses.dataclass
class Gallery:
    model_id: str
    embedding_dim: int
    speakers: Dict[str, EnrolledSpeaker] = dataclasses.field(default_factory=dict)

    def enroll(self, name: str, embeddings: np.ndarray, files: Sequence[str] = ()) -> EnrolledSpeaker:
        """Add files' embeddings to `name` (a new speaker, or more files of one already enrolled)."""
        x = l2_normalize(np.atleast_2d(embeddings))
        if x.shape[1] != self.embedding_dim:
            raise GalleryError(f"embeddings of {x.shape[1]} dimensions, the gallery holds {self.embedding_dim}")
        spk = self.speakers.get(name) or EnrolledSpeaker(name, np.zeros(self.embedding_dim), 0)
        spk.total = spk.total + x.sum(axis=0)
        spk.count += x.shape[0]
        spk.files += [os.path.basename(f) for f in files]
        self.speakers[name] = spk
        return spk

    def centroids(self) -> Tuple[List[str], np.ndarray]:
        names = sorted(self.speakers)
        return names, np.stack([self.speakers[n].centroid for n in names]) if names else np.zeros((0, self.embedding_dim))

    def scores(self, embeddings: np.ndarray, cohort: Optional[Cohort] = None) -> Tuple[List[str], np.ndarray]:
        """(speaker names, scores [files, speakers]) of file embeddings against every enrolled centroid."""
        names, centroids = self.centroids()
        if not names:
            raise GalleryError("the gallery has no enrolled speaker; add some with python -m trainer.enroll")
        return names, score_matrix(np.atleast_2d(embeddings), centroids, cohort)

    # -- the file ------------------------------------------------------------------------------------
    def to_json(self) -> Dict:
        return {"format": GALLERY_FORMAT, "model_id": self.model_id, "embedding_dim": self.embedding_dim,
                "speakers": {n: self.speakers[n].to_json() for n in sorted(self.speakers)}}

    @classmethod
    def from_json(cls, data: Mapping) -> "Gallery":
        try:
            return cls(str(data["model_id"]), int(data["embedding_dim"]),
                       {n: EnrolledSpeaker.from_json(n, s) for n, s in data.get("speakers", {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise GalleryError(f"not a gallery file ({type(exc).__name__}: {exc})") from None

    @classmethod
    def read(cls, path: str) -> "Gallery":
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_json(json.load(f))
        except FileNotFoundError:
            raise GalleryError(f"{path}: no such gallery; create it with python -m trainer.enroll") from None
        except (OSError, ValueError) as exc:
            raise GalleryError(f"{path} is not a gallery file ({exc})") from None

    @classmethod
    def for_model(cls, path: str, model_id: str, embedding_dim: int, create: bool = False) -> "Gallery":
        """The gallery at `path` for the export `model_id` (a new one when `create` and there is none)."""
        if create and not os.path.exists(path):
            return cls(model_id, embedding_dim)
        gallery = cls.read(path)
        if gallery.model_id != model_id:
            raise GalleryError(f"{path} was enrolled with another model (id {gallery.model_id[:8]}…, this export is "
                               f"{model_id[:8]}…): embeddings of two models cannot be compared; enroll again")
        return gallery

    def write(self, path: str) -> None:
        """Write the whole file or nothing (a temporary file renamed into place)."""
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gallery-", suffix=".json", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
