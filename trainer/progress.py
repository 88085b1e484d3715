"""Training progress as a Keras callback (fit runs with verbose=0): on a terminal a bar over every step of
the run with its ETA and the last epoch's figures beside it; otherwise one line per epoch (its seconds, loss,
metrics, validation figures), through pipelines.progress."""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, Mapping, Optional

from pipelines.progress import Progress

log = logging.getLogger(__name__)


def epoch_figures(logs: Optional[Mapping], seconds: float) -> str:
    """`12.3 s, loss 1.2345, accuracy 0.5000, val_loss 1.4000`: the epoch's numbers, learning rate aside."""
    parts = [f"{seconds:.1f} s"]
    for key, value in (logs or {}).items():
        if key in ("lr", "learning_rate") or isinstance(value, bool):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            parts.append(f"{key} {number:.4f}")
    return ", ".join(parts)


class TrainingProgress:
    """Keras callback factory (tf_keras, imported only here)."""

    @staticmethod
    def make(epochs: int, steps: int, interactive: Optional[bool] = None,
             emit: Optional[Callable[[str], None]] = None, stream=None):
        import tf_keras as keras

        class TrainingProgress(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                probe = Progress("train", interactive=interactive, stream=stream, enabled=False)
                self.per_step = probe.interactive  # a bar over the steps; else a line per epoch
                total, unit = (epochs * steps, "steps") if self.per_step else (epochs, "epochs")
                self.bar = Progress("train", total=total, unit=unit, interactive=probe.interactive, emit=emit,
                                    stream=stream, every_fraction=1.0 / total, every_seconds=math.inf)
                self.bar.__enter__()
                self.epoch, self.epoch_start = 0, time.monotonic()

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch, self.epoch_start = epoch, time.monotonic()

            def on_train_batch_end(self, batch, logs=None):
                if self.per_step:
                    self.bar.update(min(self.epoch * steps + batch + 1, epochs * steps))

            def on_epoch_end(self, epoch, logs=None):
                seconds = time.monotonic() - self.epoch_start
                self.bar.note = f"epoch {epoch + 1}/{epochs}: {epoch_figures(logs, seconds)}"
                self.bar.update((epoch + 1) * steps if self.per_step else epoch + 1)

            def on_train_end(self, logs=None):
                self.bar.close()

        return TrainingProgress()
