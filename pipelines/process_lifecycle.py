"""Start-up and exit of every command's processes (the builder's runner and Beam workers, the trainer).

- `import tensorflow` imports the Keras optimizers eagerly "so that optimizers register in the
  SavedModel registry" (b/196254385; Keras brings matplotlib.pyplot and more), a large share of the
  import's CPU. Feature computation never builds, saves or loads a Keras model: `import_tensorflow`
  makes that one import fail, as TensorFlow allows (it catches the ImportError), and a later
  `import keras` (the trainer, tests in the same process) works as usual.
- TensorFlow's start-up talks on a CPU machine (cudart "Could not find cuda drivers", "failed call to
  cuInit", the oneDNN and CPU-instruction banners, absl warnings). `quiet_tensorflow()`, which every
  command calls unless --verbose, sets TF_CPP_MIN_LOG_LEVEL=3 before the import; `import_tensorflow`
  then drops the lines the C++ libraries still write to stderr during the import (they ignore that
  level) and sets TensorFlow's and absl's Python loggers to ERROR. Other stderr output is passed on.
  The setting travels in the environment, so Beam's worker processes are quiet as well.
- Exiting a process that holds TensorFlow and Beam is slow: the interpreter's final garbage
  collections walk every object of those libraries. `fast_exit` registers `gc.freeze()` to run
  first at exit (atexit handlers run before the interpreter's teardown), so those collections
  skip the long-lived heap. Nothing is skipped: atexit handlers, buffers and finalizers still run.
The figures are in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import atexit
import contextlib
import gc
import os
import re
import sys
import tempfile

EAGER_KERAS_MODULES = ("keras.src.optimizers", "tf_keras.src.optimizers")
QUIET_ENV = "SPEAKER_DATASETS_QUIET_TF"  # "1": drop TensorFlow's start-up noise (set by quiet_tensorflow)
# stderr lines of TensorFlow's start-up that tell a user of a CPU machine nothing
NOISE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called"
                   r"|^[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] "
                   r"|^E\d{4} .*(cuInit|cuda|CUDA|cuDNN|cuFFT|cuBLAS)"
                   r"|oneDNN custom operations|^To enable the following instructions"
                   r"|rebuild TensorFlow with the appropriate compiler flags|TF_ENABLE_ONEDNN_OPTS")
_exit_hook_registered = False


def quiet_tensorflow(verbose: bool = False) -> None:
    """Call before TensorFlow is imported: no start-up noise from it in this process and its children,
    unless `verbose` (then TensorFlow logs as it does by itself)."""
    if verbose:
        os.environ.pop(QUIET_ENV, None)
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ[QUIET_ENV] = "1"
    if "tensorflow" in sys.modules:
        quiet_loggers()


def is_quiet() -> bool:
    return os.environ.get(QUIET_ENV) == "1"


def quiet_loggers() -> None:
    """TensorFlow's, Keras's and absl's Python loggers at ERROR."""
    import logging  # imported here, when needed: it registers an atexit handler of its own

    for name in ("tensorflow", "absl", "h5py", "keras", "tf_keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def filtered_stderr():
    """Collect what anything (C++ included) writes to file descriptor 2 meanwhile; then pass on every line
    that is not start-up noise (NOISE)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow(lean: bool = True):
    """The `tensorflow` module. When not loaded yet: imported quietly after `quiet_tensorflow` and, when
    `lean`, without the eager Keras optimizers (feature computation; loading or training a model wants them)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    blocked = [name for name in EAGER_KERAS_MODULES if name not in sys.modules] if lean else []
    for name in blocked:
        sys.modules[name] = None  # `import_module(name)` now raises ImportError, which TensorFlow catches
    try:
        with filtered_stderr() if is_quiet() else contextlib.nullcontext():
            import tensorflow
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    if is_quiet():
        quiet_loggers()
    return tensorflow


def fast_exit() -> None:
    """Freeze the heap when this process exits, so the interpreter's last collections skip it (once)."""
    global _exit_hook_registered
    if not _exit_hook_registered:
        atexit.register(gc.freeze)
        _exit_hook_registered = True


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def tensorflow_thread_share(workers: int) -> dict:
    """TensorFlow's thread-pool sizes for one of `workers` worker processes sharing this machine (cores //
    workers each), as environment variables, leaving out those the user has set: TensorFlow otherwise sizes its
    pools for every core in every worker."""
    share = str(max(1, usable_cores() // max(workers, 1)))
    return {var: share for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS") if var not in os.environ}
