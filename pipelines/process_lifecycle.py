"""Start-up and exit of the builder's processes (the runner and each Beam worker).

- `import tensorflow` imports the Keras optimizers eagerly "so that optimizers register in the
  SavedModel registry" (b/196254385; Keras brings matplotlib.pyplot and more), a large share of the
  import's CPU. Feature computation never builds, saves or loads a Keras model: `import_tensorflow`
  makes that one import fail, as TensorFlow allows (it catches the ImportError), and a later
  `import keras` (the trainer, tests in the same process) works as usual.
- Exiting a process that holds TensorFlow and Beam is slow: the interpreter's final garbage
  collections walk every object of those libraries. `fast_exit` registers `gc.freeze()` to run
  first at exit (atexit handlers run before the interpreter's teardown), so those collections
  skip the long-lived heap. Nothing is skipped: atexit handlers, buffers and finalizers still run.
The figures are in the README (Performance).
"""
from __future__ import annotations

import atexit
import gc
import sys

EAGER_KERAS_MODULES = ("keras.src.optimizers", "tf_keras.src.optimizers")
_exit_hook_registered = False


def import_tensorflow():
    """The `tensorflow` module; imported without the eager Keras optimizers when not loaded yet."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    blocked = [name for name in EAGER_KERAS_MODULES if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # `import_module(name)` now raises ImportError, which TensorFlow catches
    try:
        import tensorflow
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return tensorflow


def fast_exit() -> None:
    """Freeze the heap when this process exits, so the interpreter's last collections skip it (once)."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(gc.freeze)
        _exit_hook_registered = True
