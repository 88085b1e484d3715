"""pipelines.report: the seconds-per-speaker chart keeps a bounded number of patches whatever the number of\nspeakers (its cost is measured in benchmarks/), and draws an empty dataset too."""
from __future__ import annotations

import io

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


def test_many_speakers_get_their_distribution_not_one_bar_each():
    fig = report.speaker_figure(Figure, rows(5000))
    fig.savefig(io.BytesIO(), format="png", dpi=90, bbox_inches="tight")
    ax, labels = bars_of(fig)
    assert "5000 speakers" in ax.get_title() and ax.get_ylabel() == "speakers"
    assert len(ax.patches) <= 3 * 30 and not any(label.startswith("librispeech:") for label in labels)


def test_no_speaker_at_all_is_an_empty_chart():
    fig = report.speaker_figure(Figure, {})
    fig.savefig(io.BytesIO(), format="png", dpi=90)
    assert len(fig.axes[0].patches) == 0
