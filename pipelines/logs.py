"""One logging set-up for every command: our loggers at INFO, the chatty libraries at WARNING."""
from __future__ import annotations

import logging

QUIET = ("absl", "tensorflow", "apache_beam", "tfx_bsl", "tensorflow_transform", "h5py", "matplotlib")


def setup(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
