"""pipelines.progress (the shared display) and pipelines.build_progress (the builder's counts)."""
from __future__ import annotations

import io
import logging
import re

import pytest

from pipelines import build_progress
from pipelines.progress import Progress, duration_text, eta_seconds, status_line
from tests.conftest import build, make_corpus


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_lines_are_bounded_and_say_k_of_n_amount_rate_and_eta():
    clock, lines = Clock(), []
    with Progress("download", total=200, unit="files", amount="bytes", interactive=False, emit=lines.append,
                  clock=clock) as p:
        for _ in range(200):
            clock.t += 0.5  # 100 s in all: 3 lines for time besides the 10 for the fractions
            p.advance(1, amount=1e6)
    assert 10 <= len(lines) <= 10 + 100 // 30 + 1
    assert lines[-1] == "download: 200/200 files (100%), 200.0 MB, 2.00 MB/s, 0:01:40 elapsed, ETA 0:00:00"
    first = next(ln for ln in lines if "(10%)" in ln)
    assert first.startswith("download: 20/200 files (10%), 20.0 MB, 2.00 MB/s, 0:00:10 elapsed, ETA 0:01:30")
    done = [int(re.match(r"download: (\d+)/200", ln).group(1)) for ln in lines]
    assert done == sorted(done)


def test_a_last_line_at_the_end_and_nothing_when_disabled_or_on_a_terminal_without_bar():
    clock, lines = Clock(), []
    with Progress("x", total=1000, interactive=False, emit=lines.append, clock=clock) as p:
        clock.t = 3
        p.advance(5)  # below 10 %, before 30 s: no line yet
        assert lines == []
    assert lines == ["x: 5/1000 items (0%), 0:00:03 elapsed, ETA 0:09:57"]
    quiet = []
    with Progress("x", total=10, enabled=False, emit=quiet.append) as p:
        p.advance(10)
    assert quiet == []


def test_terminal_draws_a_rich_bar_and_no_plain_lines():
    stream, lines = io.StringIO(), []
    with Progress("build", total=4, unit="recordings", amount="audio", interactive=True, emit=lines.append,
                  stream=stream) as p:
        p.update(4, amount=7200.0)
    out = stream.getvalue()
    assert lines == []
    assert "build" in out and "4/4" in out and "2.00 h of audio" in out


def test_eta_and_durations():
    assert eta_seconds(0, 10, 5.0) is None and eta_seconds(5, None, 5.0) is None
    assert eta_seconds(5, 10, 5.0) == 5.0
    assert duration_text(3725) == "1:02:05" and duration_text(None) == "?"
    assert status_line("t", 3, None, "epochs", 2.0) == "t: 3 epochs, 0:00:02 elapsed, ETA ?"


def test_feed_counts_what_workers_recorded(tmp_path):
    feed = build_progress.feed_dir(str(tmp_path / ".tmp"))
    for seconds in (1.5, 2.25, 0.0):
        build_progress.record_done(feed, seconds)
    with open(f"{feed}/partial.txt", "w") as f:
        f.write("3.0")  # a line still being written is not counted yet
    assert build_progress.read_feed(feed) == (3, 3.75)
    assert build_progress.feed_dir("gs://bucket/out/.tmp") is None
    assert build_progress.read_feed(None) == (0, 0.0)


class FakeResult:
    """A runner whose run() returns at once (Dataflow): RUNNING twice, then DONE; counters grow."""

    def __init__(self):
        self.polls = 0

    @property
    def state(self):
        return "DONE" if self.polls >= 2 else "RUNNING"

    def metrics(self):
        from apache_beam.metrics.execution import MetricKey, MetricResult
        from apache_beam.metrics.metricbase import MetricName

        self.polls += 1
        done = 5 * self.polls
        return FakeMetrics([MetricResult(MetricKey("s", MetricName("build_dataset", "recordings_done")), done, done),
                            MetricResult(MetricKey("s", MetricName("build_dataset", "decoded_seconds")),
                                         360 * done, 360 * done)])

    def wait_until_finish(self):
        return self.state


class FakeMetrics:
    def __init__(self, counters):
        self.counters = counters

    def query(self, _filter):
        return {"counters": self.counters}


class FakePipeline:
    def __init__(self):
        self.result = FakeResult()

    def run(self):
        return self.result


def test_runner_that_returns_at_once_is_followed_through_its_counters():
    lines = []
    result = build_progress.BuildProgress(15, None, poll_seconds=0, interactive=False, emit=lines.append,
                                          every_seconds=1e9).run(FakePipeline())
    assert result.state == "DONE"
    assert [re.match(r"build: (\d+/15)", ln).group(1) for ln in lines] == ["5/15", "10/15", "15/15"]
    assert "1.50 h of audio" in lines[-1]


def _build_lines(caplog, manifest, out, *flags):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pipelines.progress"):
        meta = build(manifest, out, *flags)
    return meta, [r.getMessage() for r in caplog.records if r.name == "pipelines.progress"]


@pytest.mark.slow
def test_builder_progress_reaches_the_manifest_total_with_manifest_rejections(tmp_path, caplog):
    manifest = make_corpus(tmp_path / "corpus", speakers=2, recordings=2)
    text = manifest.read_text()
    manifest.write_text(text + "{not json\n\n" + text.splitlines()[0] + "\n")  # invalid, blank, duplicate id
    meta, lines = _build_lines(caplog, manifest, tmp_path / "out")
    assert meta.counts.inputs == 6
    assert lines and len(lines) <= 12
    assert re.match(r"build: 6/6 recordings \(100%\), 0\.0\d h of audio, [\d.]+ audio s/s, .* ETA 0:00:00$",
                    lines[-1])
    assert not (tmp_path / "out" / ".tmp").exists()  # the feed went with the temp folder


@pytest.mark.slow
def test_builder_progress_in_worker_processes_and_no_progress_flag(small_corpus, tmp_path, caplog):
    _, lines = _build_lines(caplog, small_corpus, tmp_path / "multi", "--direct_num_workers", "2",
                            "--direct_running_mode", "multi_processing")
    assert lines[-1].startswith("build: 12/12 recordings (100%)")
    _, quiet = _build_lines(caplog, small_corpus, tmp_path / "quiet", "--no-progress")
    assert quiet == []


def test_metrics_counts_reads_the_counters():
    counts = build_progress.metrics_counts(FakeResult())
    assert counts == (5, 1800.0)
