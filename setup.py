"""speaker-datasets: scrape solo-narrator audio, build speaker-recognition TFRecords with Beam, train models.

`--setup_file ./setup.py` ships this package to Dataflow workers; they install `install_requires`
only. Scraper and browser packages are in the `scrapers` extra and never reach the workers.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _requirements(name):
    """Requirement lines of requirements/<name>, the single list shared with scripts/bootstrap.sh."""
    with open(os.path.join(HERE, "requirements", name)) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]


def _version():
    """pipelines.__version__, the one place the version is written (`speaker-datasets --version` prints it)."""
    with open(os.path.join(HERE, "pipelines", "__init__.py")) as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


setup(
    name="speaker-datasets",
    version=_version(),
    description="Speaker-recognition datasets at scale: scrapers, Apache Beam dataset builder, trainer",
    long_description=__doc__,
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=["pipelines", "pipelines.*", "scrapers", "scrapers.*", "trainer", "trainer.*",
                                     "speaker_datasets"]),
    install_requires=_requirements("base.txt"),
    extras_require={"scrapers": _requirements("scrapers.txt"), "test": _requirements("test.txt")},
    entry_points={
        "console_scripts": [
            "speaker-build-dataset=pipelines.build_dataset:main",
            "speaker-datasets=speaker_datasets.cli:main",
        ],
    },
)
