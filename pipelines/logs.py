"""The one logging set-up of every command (builder, preprocess, trainer, scrapers, demos): our loggers,
named by module (`__name__`), at INFO (DEBUG with verbose); the chatty libraries at WARNING; on stderr."""
from __future__ import annotations

import logging

QUIET = ("absl", "tensorflow", "apache_beam", "tfx_bsl", "tensorflow_transform", "h5py", "matplotlib", "urllib3",
         "selenium", "PIL")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT, datefmt="%H:%M:%S")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
