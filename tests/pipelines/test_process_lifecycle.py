"""pipelines.process_lifecycle: TensorFlow without the eager Keras import; the heap frozen at exit."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import pytest

pytestmark = pytest.mark.slow  # full builds, training, tf.Transform or subprocesses importing TensorFlow


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "PYTHONPATH": "."})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_tensorflow_is_imported_without_keras_and_keras_still_works_afterwards():
    out = run_python("""
        import sys
        from pipelines import process_lifecycle as runtime
        tf = runtime.import_tensorflow()
        print("keras loaded:", any(m == "keras" or m.startswith(("keras.", "tf_keras")) for m in sys.modules))
        print("blocked left:", [m for m in runtime.EAGER_KERAS_MODULES if m in sys.modules])
        print("fft:", float(tf.reduce_sum(tf.abs(tf.signal.rfft(tf.ones([8]))))))
        print("same module:", runtime.import_tensorflow() is tf)
        import keras.src.optimizers  # the trainer's path: Keras imports normally later
        print("keras optimizer:", keras.optimizers.Adam.__name__)
    """)
    assert "keras loaded: False" in out and "blocked left: []" in out
    assert "fft: 8.0" in out and "same module: True" in out and "keras optimizer: Adam" in out


def test_features_module_uses_it():
    out = run_python("""
        import sys
        import pipelines.features
        print("keras loaded:", "keras" in sys.modules)
    """)
    assert "keras loaded: False" in out


def test_fast_exit_freezes_the_heap_before_the_interpreter_tears_down():
    out = run_python("""
        import atexit, gc
        from pipelines import process_lifecycle as runtime
        # atexit runs handlers last-registered first: this one runs after fast_exit's gc.freeze
        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
        runtime.fast_exit(); runtime.fast_exit()  # registered once
        print("frozen before exit:", gc.get_freeze_count() > 0)
        print("handlers:", atexit._ncallbacks())
    """)
    assert "frozen before exit: False" in out and "frozen at exit: True" in out and "handlers: 2" in out
