"""pipelines.features: a segment's features do not depend on the batch it is computed in."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines import schema
from pipelines.features import BatchFeaturizer


@pytest.mark.parametrize("names", [("fft",), ("spectrogram",), ("log_mel",), ("fft", "log_mel")])
def test_features_are_bit_identical_in_any_batch(names):
    # Beam's BatchElements sizes batches by timing, and the exported model sees one clip at a time:
    # the stored bytes must not depend on the batch (they did for log_mel through one large matmul)
    featurizer = BatchFeaturizer(schema.FeatureConfig(segment_samples=16000), ("audio",) + names)
    pcm = (np.random.default_rng(3).standard_normal((64, 16000)) * 3000).astype(np.int16)
    whole = featurizer(pcm)
    for size in (1, 2, 4, 7, 8, 13, 31, 63):
        for name in names:
            parts = np.concatenate([featurizer(pcm[i:i + size])[name] for i in range(0, 64, size)])
            assert parts.tobytes() == whole[name].tobytes(), (name, size)
