"""The builder's progress: recordings done of the manifest's total, hours decoded, rate and ETA.

Every manifest line ends once as done: decoded by AnalyzeAudio (kept or rejected), or rejected by
ReadManifest (invalid line, duplicate id). Each such end is counted twice:
- the Beam counters `recordings_done` and `decoded_seconds` (namespace build_dataset), which a runner whose
  `run()` returns at once (Dataflow) serves from `result.metrics()` while the job runs;
- a line in a feed file under the job's local temp folder (TEMP/progress/<pid>-<thread>.txt), because the
  DirectRunner (FnApiRunner, in-process or multi_processing) returns from `run()` only when the job is done
  and its metrics exist only then. The main process polls the feed while `run()` blocks.
The feed lives in the temp folder, which the build removes: the dataset's bytes never change.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Optional, Tuple

from pipelines.paths import is_remote, join
from pipelines.progress import Progress

log = logging.getLogger(__name__)

NAMESPACE = "build_dataset"
DONE_COUNTER = "recordings_done"
DECODED_COUNTER = "decoded_seconds"
FEED_DIR = "progress"
POLL_SECONDS = 0.5


def feed_dir(temp_dir: str) -> Optional[str]:
    """The feed folder under a local temp folder (absolute, so worker processes find it); None when remote."""
    if is_remote(temp_dir):
        return None
    return os.path.abspath(join(temp_dir, FEED_DIR))


def record_done(feed: Optional[str], decoded_s: float = 0.0) -> None:
    """Count one manifest line as done (worker side): the Beam counters, and a line in this thread's feed file.
    A feed that cannot be written only costs the live display, never the build."""
    from apache_beam.metrics import Metrics

    Metrics.counter(NAMESPACE, DONE_COUNTER).inc()
    if not feed:
        return
    try:
        os.makedirs(feed, exist_ok=True)
        with open(os.path.join(feed, f"{os.getpid()}-{threading.get_ident()}.txt"), "a", encoding="ascii") as f:
            f.write(f"{decoded_s:.3f}\n")
    except OSError:
        log.debug("progress feed %s not writable", feed, exc_info=True)


def read_feed(feed: Optional[str]) -> Tuple[int, float]:
    """(recordings done, seconds decoded) summed over the feed files written so far."""
    done, seconds = 0, 0.0
    if not feed or not os.path.isdir(feed):
        return done, seconds
    for name in sorted(os.listdir(feed)):
        try:
            with open(os.path.join(feed, name), encoding="ascii") as f:
                for line in f:
                    if line.endswith("\n"):  # a line still being written counts at the next poll
                        done += 1
                        seconds += float(line)
        except (OSError, ValueError):
            continue
    return done, seconds


def metrics_counts(result) -> Optional[Tuple[int, float]]:
    """(recordings done, seconds decoded) from a PipelineResult's counters (committed, else attempted);
    None when the runner cannot answer."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 - a runner without metrics support: no live numbers, the build goes on
        log.debug("no metrics from %s", type(result).__name__, exc_info=True)
        return None
    values = {DONE_COUNTER: 0, DECODED_COUNTER: 0}
    for c in counters:
        if c.key.metric.name in values:
            try:
                value = c.committed
            except Exception:  # noqa: BLE001 - some runners only have attempted values while running
                value = None
            values[c.key.metric.name] += value if value is not None else (c.attempted or 0)
    return values[DONE_COUNTER], float(values[DECODED_COUNTER])


TERMINAL = ("DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED")


class BuildProgress:
    """Shows the build's progress while `run(pipeline)` runs it (see the module doc)."""

    def __init__(self, total: int, feed: Optional[str], enabled: bool = True, poll_seconds: float = POLL_SECONDS,
                 **display):
        self.feed, self.poll_seconds = feed, poll_seconds
        self.display = Progress("build", total=total, unit="recordings", amount="audio", enabled=enabled, **display)
        self._stop = threading.Event()

    def _watch_feed(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self._show(read_feed(self.feed))

    def _show(self, counts: Optional[Tuple[int, float]]) -> None:
        if counts is not None:
            done, seconds = counts
            self.display.update(min(done, self.display.total or done), seconds)

    def run(self, pipeline):
        """`pipeline.run()` with progress shown until it ends; returns the finished PipelineResult."""
        import time

        watcher = None
        with self.display:
            if self.feed and self.display.enabled:
                watcher = threading.Thread(target=self._watch_feed, name="build-progress", daemon=True)
                watcher.start()
            try:
                result = pipeline.run()
                # runners that return at once (Dataflow, PortableRunner): their counters until the job ends,
                # unless the local feed (ahead of committed counters) already shows the counts
                while str(getattr(result, "state", "DONE")).rsplit(".", 1)[-1] not in TERMINAL:
                    if watcher is None and self.display.enabled:
                        self._show(metrics_counts(result))
                    time.sleep(self.poll_seconds)
                result.wait_until_finish()
            finally:
                self._stop.set()
                if watcher is not None:
                    watcher.join()
            final = read_feed(self.feed) if self.feed else metrics_counts(result)
            self._show(final)
        return result
