"""trainer.model: both architectures take their feature's shape and end in a unit embedding and a softmax."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("name, shape", [("spectrogram_cnn", (98, 64)), ("spectrogram_cnn", (48, 40)),
                                         ("fft_conv1d", (8000,))])
def test_outputs_have_the_right_shapes(name, shape):
    from trainer import model

    net = model.build(name, shape, num_classes=5, embedding_dim=16, width=0.125)
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    out = net(x, training=False)
    probs, emb = out[model.PROBABILITIES].numpy(), out[model.EMBEDDING].numpy()
    assert probs.shape == (3, 5) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert emb.shape == (3, 16) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_unknown_model_is_an_error():
    from trainer import model

    with pytest.raises(ValueError, match="unknown model"):
        model.build("resnet", (98, 64), 3)
