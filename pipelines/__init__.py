"""The dataset builder (build_dataset), tf.Transform preprocessing (preprocess) and the contracts they
share with the scrapers and the trainer. Module map: ARCHITECTURE.md."""

__version__ = "0.1.0"


def code_version() -> str:
    """The installed distribution's version, else this package's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("speaker-datasets")
    except PackageNotFoundError:
        return __version__
