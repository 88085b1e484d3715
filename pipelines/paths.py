"""Paths that may be local or remote (`gs://…`, any `scheme://`), joined the same way everywhere."""
from __future__ import annotations

import os


def is_remote(path: str) -> bool:
    return "://" in path


def join(base: str, *parts: str) -> str:
    """`base/part/…`: os.path.join locally; '/'-joined (as Beam's FileSystems and tf.io.gfile do) for URLs."""
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def read_bytes(path: str) -> bytes:
    """The bytes of a local or remote file (remote through tf.io.gfile, imported only then);
    FileNotFoundError when it does not exist."""
    if not is_remote(path):
        with open(path, "rb") as f:
            return f.read()
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    """The UTF-8 text of a local or remote file; FileNotFoundError when it does not exist."""
    return read_bytes(path).decode("utf-8")


def exists(path: str) -> bool:
    """Whether a local or remote path exists (remote through tf.io.gfile, imported only then)."""
    if not is_remote(path):
        return os.path.exists(path)
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def write_bytes(path: str, data: bytes) -> None:
    """Write a local file whole (a temporary file renamed over it) or a remote one (through tf.io.gfile)."""
    if not is_remote(path):
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(data)


REAL_DATA_ENV = "SPEAKER_DATA_DIR"


def real_data_dir() -> str:
    """The optional folder of real recordings that tests, benchmarks and the local LibriVox site use when it
    exists (README, Development): `$SPEAKER_DATA_DIR`, else `shared/data` beside the repository (where the
    developers keep theirs). Layout: librispeech_202/<speaker>/*.flac, fsdd/recordings/*.wav, noise/*.wav,
    librivox_api/*.json, each with its ATTRIBUTION.md."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get(REAL_DATA_ENV) or os.path.join(os.path.dirname(here), "shared", "data")
