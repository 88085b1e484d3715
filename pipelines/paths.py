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
