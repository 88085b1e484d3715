"""Local Beam workers that start warm: `--local-workers N` runs the builder's stages in N worker processes forked
from one process that has already imported Beam, the builder's stages and TensorFlow.

Why: DirectRunner's `multi_processing` mode starts each worker as a new interpreter once the pipeline is built,
and each then imports Beam (~2.7 CPU s here) and, at its first feature batch, TensorFlow (~4.5 CPU s); on a
small machine those imports are a large share of a local build and they happen while the other core waits
(benchmarks/RESULTS.md, One worker against two). Here the command starts one preloading process first thing
(multiprocessing's `forkserver`, whose preload imports those modules once, on the core the main process leaves
idle while it imports Beam and builds the pipeline); each worker is then a `fork` of it, ready in milliseconds,
sharing the imported modules' memory copy-on-write.

How: the workers speak Beam's own worker-pool protocol (`BeamFnExternalWorkerPool`, the one Flink and Spark
clusters use for Python workers, here on 127.0.0.1): the runner is Beam's FnApiRunner, the engine DirectRunner
runs batch pipelines on, with an `EXTERNAL` environment pointing at this pool, and it asks for one worker per
`--local-workers`. Each worker runs Beam's `SdkHarness` until the runner closes its control channel. Nothing is
forked after TensorFlow has run: the preloading process only imports (it holds one thread), so the forks are
safe; TensorFlow starts its thread pools in each worker, `cores // workers` threads each.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import traceback
from typing import Dict, Iterator, List, Optional, Sequence

from pipelines import process_lifecycle

log = logging.getLogger(__name__)
# This module is preloaded too: the preloading process, which holds TensorFlow and Beam, then exits at the end of
# the command without the interpreter's last walk over their objects (process_lifecycle.fast_exit; ~1.3 s here).
process_lifecycle.fast_exit()

# what each worker needs before its first element: Beam's worker, the builder's stages (and through them PyAV
# and numpy), TensorFlow for the features
PRELOAD = ("pipelines.local_workers", "apache_beam.runners.worker.sdk_worker", "pipelines.transforms",
           "pipelines.features")
STOP_TIMEOUT_S = 10.0

_context: Optional[multiprocessing.context.BaseContext] = None


def start_preloading(workers: int, preload: Sequence[str] = PRELOAD):
    """Start the preloading process now (it imports `preload` in the background) and give the workers it will
    fork their share of the cores for TensorFlow's threads; returns the multiprocessing context. Call once the
    environment is final (TensorFlow's log level included): the preloading process keeps the one it started with."""
    global _context
    if _context is None:
        from multiprocessing import forkserver

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(preload))
        with worker_threads(workers):
            forkserver.ensure_running()  # the preloading process takes this environment with it
        _context = context
    return _context


@contextlib.contextmanager
def worker_threads(workers: int):
    """Meanwhile, TensorFlow's thread counts (unless the user set them) are this process's cores // workers."""
    added = process_lifecycle.tensorflow_thread_share(workers)
    os.environ.update(added)
    try:
        yield
    finally:
        for var in added:
            os.environ.pop(var, None)


def run_harness(control_url: str, worker_id: str) -> None:
    """A worker's life: Beam's SDK harness, connected to the runner's control service, until it is closed."""
    from apache_beam.runners.worker.sdk_worker import SdkHarness

    SdkHarness(control_url, worker_id=worker_id).run()


class ForkedWorkerPool:
    """Beam's BeamFnExternalWorkerPool service: StartWorker forks a worker from the preloading process.

    A watcher thread per worker is the only one that waits for it. A worker that ends badly (a signal, an exit
    code) while the pool serves is noted in `failures`, and the watcher answers the runner in its place: every
    request the runner sends that worker gets an error response naming it, so the run fails at once even when
    the worker died before it connected (the runner would otherwise wait for it forever)."""

    def __init__(self, context):
        self.context = context
        self.address = ""
        self.watchers: Dict[str, tuple] = {}  # worker id -> (process, watcher thread)
        self.failures: List[str] = []  # one line per worker that ended badly
        self.closing = False
        self.channels: List = []  # the watchers' connections to the runner, closed with the pool
        self.lock = threading.Lock()

    def StartWorker(self, request, unused_context):  # noqa: N802 (the gRPC method's name)
        from apache_beam.portability.api import beam_fn_api_pb2

        try:
            process = self.context.Process(target=run_harness, name=f"beam-worker-{request.worker_id}",
                                           args=(request.control_endpoint.url, request.worker_id))
            process.start()
            watcher = threading.Thread(target=self.watch, name=f"watch-{request.worker_id}", daemon=True,
                                       args=(process, request.control_endpoint.url, request.worker_id))
            watcher.start()
            with self.lock:
                self.watchers[request.worker_id] = (process, watcher)
            return beam_fn_api_pb2.StartWorkerResponse()
        except Exception:  # the runner raises it with this text
            return beam_fn_api_pb2.StartWorkerResponse(error=traceback.format_exc())

    def StopWorker(self, request, unused_context):  # noqa: N802
        from apache_beam.portability.api import beam_fn_api_pb2

        with self.lock:
            entry = self.watchers.pop(request.worker_id, None)
        if entry is not None:
            stop(*entry)
        return beam_fn_api_pb2.StopWorkerResponse()

    def watch(self, process, control_url: str, worker_id: str) -> None:
        process.join()
        code = process.exitcode
        if not code or self.closing:
            return
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        message = f"local worker process {process.pid} {how}"
        log.debug("%s", message)
        with self.lock:
            self.failures.append(message)
        self.answer_for(control_url, worker_id, message)

    def answer_for(self, control_url: str, worker_id: str, message: str) -> None:
        """Connect to the runner's control service as worker `worker_id` and fail each of its requests with
        `message`; returns when the runner closes the stream (or refuses it: the worker had connected, and the
        runner already saw its stream break)."""
        import queue

        import grpc
        from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc

        channel = grpc.insecure_channel(control_url)
        with self.lock:
            self.channels.append(channel)
        answers: "queue.Queue" = queue.Queue()

        def responses():
            while True:
                answer = answers.get()
                if answer is None:
                    return
                yield answer

        try:
            stub = beam_fn_api_pb2_grpc.BeamFnControlStub(channel)
            for request in stub.Control(responses(), metadata=[("worker_id", worker_id)]):
                answers.put(beam_fn_api_pb2.InstructionResponse(instruction_id=request.instruction_id, error=message))
        except grpc.RpcError:
            log.debug("control stream for %s ended", worker_id, exc_info=True)
        finally:
            answers.put(None)

    def stop_all(self) -> None:
        with self.lock:
            self.closing = True
            entries, self.watchers = list(self.watchers.values()), {}
            channels, self.channels = self.channels, []
        for channel in channels:
            channel.close()
        for entry in entries:
            stop(*entry)


def stop(process, watcher: threading.Thread, timeout: float = STOP_TIMEOUT_S) -> None:
    """A worker leaves by itself when the runner closes its control channel; one that does not is terminated.
    Only its watcher waits on it (two threads reading one process's exit status would race)."""
    watcher.join(timeout)
    if watcher.is_alive():  # still waiting for its process
        log.warning("worker %s did not stop; terminating it", process.name)
        with contextlib.suppress(OSError):
            process.terminate()
        watcher.join(timeout)


@contextlib.contextmanager
def worker_pool(workers: int) -> Iterator[ForkedWorkerPool]:
    """Serve the pool on 127.0.0.1 meanwhile; yields it (`address`, `failures`). Every worker is stopped on the
    way out."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2_grpc
    from concurrent import futures

    pool = ForkedWorkerPool(start_preloading(workers))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max(2, workers)))
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    pool.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    try:
        yield pool
    finally:
        server.stop(0)
        pool.stop_all()


def runner(address: str):
    """Beam's FnApiRunner (DirectRunner's batch engine) whose workers come from the pool at `address`."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.transforms import environments

    # FnApiRunner warns that direct_num_workers > 1 wants a multi_* running mode: those modes replace the
    # environment given here with workers of their own, so this runner keeps the default mode on purpose
    logging.getLogger("apache_beam.runners.portability.fn_api_runner.fn_runner").addFilter(running_mode_warning)
    return FnApiRunner(default_environment=environments.ExternalEnvironment(address))


def running_mode_warning(record: logging.LogRecord) -> bool:
    """False for FnApiRunner's warning about direct_running_mode (a logging filter)."""
    return "direct_running_mode" not in record.getMessage()
