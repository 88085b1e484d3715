"""trainer.gallery: enrolled speakers as embedding statistics, bound to one export."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trainer.gallery import Gallery, GalleryError


def unit(*v):
    x = np.asarray(v, float)
    return x / np.linalg.norm(x)


def test_enroll_accumulates_and_scores_against_centroids(tmp_path):
    g = Gallery("model-1", 3)
    g.enroll("alice", np.stack([unit(1, 0, 0), unit(1, 0.2, 0)]), ["a1.wav", "/x/a2.wav"])
    g.enroll("bob", unit(0, 1, 0)[None], ["b1.wav"])
    g.enroll("alice", unit(1, -0.2, 0)[None], ["a3.wav"])  # more files refine the speaker
    assert g.speakers["alice"].count == 3 and g.speakers["alice"].files == ["a1.wav", "a2.wav", "a3.wav"]
    names, scores = g.scores(np.stack([unit(1, 0.05, 0), unit(0.1, 1, 0)]))
    assert names == ["alice", "bob"] and scores.argmax(axis=1).tolist() == [0, 1]
    path = tmp_path / "g.json"
    g.write(str(path))
    assert "sum" in json.loads(path.read_text())["speakers"]["alice"]
    again = Gallery.for_model(str(path), "model-1", 3)
    np.testing.assert_allclose(again.speakers["alice"].centroid, g.speakers["alice"].centroid, atol=1e-6)


def test_a_gallery_is_refused_by_another_model_and_garbage_is_one_error(tmp_path):
    path = tmp_path / "g.json"
    Gallery("model-1", 3).write(str(path))
    with pytest.raises(GalleryError, match="another model"):
        Gallery.for_model(str(path), "model-2", 3)
    with pytest.raises(GalleryError, match="no such gallery"):
        Gallery.for_model(str(tmp_path / "none.json"), "model-1", 3)
    assert Gallery.for_model(str(tmp_path / "none.json"), "model-1", 3, create=True).speakers == {}
    path.write_text("{not json")
    with pytest.raises(GalleryError, match="not a gallery"):
        Gallery.read(str(path))
    with pytest.raises(GalleryError, match="no enrolled speaker"):
        Gallery("m", 3).scores(unit(1, 0, 0)[None])
    with pytest.raises(GalleryError, match="dimensions"):
        Gallery("m", 3).enroll("x", np.ones((1, 4)))
