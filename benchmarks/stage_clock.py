"""Run the dataset builder and log, on the epoch clock, when each of its fused Beam stages starts.

  python -m benchmarks.stage_clock LOG -- <pipelines.build_dataset arguments>

Beam's FnApiRunner (DirectRunner) logs "Running bundle for stage ..." at DEBUG on its `run_bundle`
logger before it runs each fused stage, in the runner process, whatever the worker count; this
module records those lines as `<epoch seconds>\\tstage\\t<stage name>` in LOG, plus marks of its
own: `shutdown_start` (every stage ran; the runner starts stopping its workers), `stages_done` (the
runner returned), `finalize_start` and `finalize_end` (pipelines.report.finalize). `benchmarks.phases`
reads it.
"""
from __future__ import annotations

import functools
import logging
import sys
import time

BUNDLE_LOGGER = "apache_beam.runners.portability.fn_api_runner.fn_runner.run_bundle"
PREFIX = "Running bundle for stage "


class StageLog:
    """Appends one tab-separated line per event, flushed at once (the process may be killed)."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")

    def mark(self, kind: str, name: str = "") -> None:
        self._file.write(f"{time.time():.4f}\t{kind}\t{name}\n")
        self._file.flush()


class _StageHandler(logging.Handler):
    def __init__(self, log: StageLog):
        super().__init__(logging.DEBUG)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(PREFIX):
            self.log.mark("stage", message[len(PREFIX):].split("\n", 1)[0])


def _wrap(owner, attribute: str, before=None, after=None) -> None:
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if before:
            before()
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                after()

    setattr(owner, attribute, wrapper)


def install(path: str) -> StageLog:
    """Hook the runner's stage log and the builder's finalize; returns the log."""
    from apache_beam.runners.portability.fn_api_runner import fn_runner, worker_handlers

    from pipelines import finalize

    log = StageLog(path)
    logger = logging.getLogger(BUNDLE_LOGGER)
    logger.addHandler(_StageHandler(log))
    logger.propagate = False  # recorded, not printed
    logger.setLevel(logging.DEBUG)  # its own level: pipelines.logs quieting "apache_beam" leaves it alone
    _wrap(worker_handlers.WorkerHandlerManager, "close_all", before=lambda: log.mark("shutdown_start"))
    _wrap(fn_runner.FnApiRunner, "run_stages", after=lambda: log.mark("stages_done"))
    _wrap(finalize, "finalize", before=lambda: log.mark("finalize_start"), after=lambda: log.mark("finalize_end"))
    return log


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m benchmarks.stage_clock LOG -- <pipelines.build_dataset arguments>", file=sys.stderr)
        return 2
    install(argv[0])
    from pipelines import build_dataset

    return build_dataset.main(argv[2:])


if __name__ == "__main__":
    sys.exit(main())
