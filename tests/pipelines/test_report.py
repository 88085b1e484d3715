"""pipelines.report: the seconds-per-speaker chart stays cheap whatever the number of speakers."""
from __future__ import annotations

import io
import time

from matplotlib.figure import Figure

from pipelines import report


def rows(n):
    return {f"librispeech:{i:04d}": {"train": (10.0 + i % 7, 10), "test": (1.0, 1)} for i in range(n)}


def bars_of(fig):
    ax = fig.axes[0]
    return ax, [t.get_text() for t in ax.get_xticklabels()]


def test_few_speakers_get_one_labelled_bar_each():
    ax, labels = bars_of(report.speaker_figure(Figure, rows(3)))
    assert labels == ["librispeech:0000", "librispeech:0001", "librispeech:0002"]
    assert len(ax.patches) == 3  # one filled step patch per split, not one rectangle per bar
    assert ax.get_title() == "Seconds per speaker and split"


def test_many_speakers_get_their_distribution_in_constant_time():
    start = time.process_time()
    fig = report.speaker_figure(Figure, rows(5000))
    fig.savefig(io.BytesIO(), format="png", dpi=90, bbox_inches="tight")
    assert time.process_time() - start < 3.0  # 202 labelled bars took 4 CPU s before
    ax, _ = bars_of(fig)
    assert "5000 speakers" in ax.get_title() and ax.get_ylabel() == "speakers"
