"""The builder beyond DirectRunner: Beam's PortableRunner against a job service and an external SDK worker pool
started separately on 127.0.0.1 (the same shards as DirectRunner's), what Dataflow's runner validates without
a cloud project (the translated job), and the deployment files it relies on (setup.py's requirements, the
Dockerfile's base image and entrypoint), parsed here since this machine has no docker engine.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import shard_bytes

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[2]} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def service_env() -> dict:
    """The services run this repository with this interpreter; the worker pool starts its SDK workers as
    `python -c ...` from the PATH, so this venv's python comes first."""
    return dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3",
                PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def children_of(pid: int) -> list:
    """Ids of the processes whose parent is `pid` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return False


@contextlib.contextmanager
def portable_services(tmp_path: Path):
    """An external SDK worker pool and a local job service on 127.0.0.1, each started as its own process,
    stopped (terminated, then killed if need be) at the end: (job endpoint, worker pool endpoint)."""
    worker_port, job_port = free_port(), free_port()
    logs = [open(tmp_path / name, "wb") for name in ("worker_pool.log", "job_service.log")]
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={worker_port}"],
            env=service_env(), stdout=logs[0], stderr=subprocess.STDOUT, cwd=REPO))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={job_port}",
             f"--staging_dir={tmp_path / 'staging'}"],
            env=service_env(), stdout=logs[1], stderr=subprocess.STDOUT, cwd=REPO))
        wait_for_port(worker_port, procs[0])
        wait_for_port(job_port, procs[1])
        yield f"127.0.0.1:{job_port}", f"127.0.0.1:{worker_port}"
    finally:
        workers = [pid for proc in procs for pid in children_of(proc.pid)]  # SDK workers the pool started
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        for log in logs:
            log.close()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        leftover = [pid for pid in workers if alive(pid)]
        for pid in leftover:
            os.kill(pid, 9)
        assert not leftover, f"SDK worker processes outlived their pool: {leftover}"


@pytest.mark.slow
def test_portable_runner_with_an_external_worker_pool_writes_directrunners_shards(small_corpus, small_dataset,
                                                                                   tmp_path):
    out, _ = small_dataset
    portable = tmp_path / "portable"
    with portable_services(tmp_path) as (job_endpoint, worker_endpoint):
        cmd = [sys.executable, "-m", "pipelines.build_dataset", "--manifest", str(small_corpus),
               "--output", str(portable), "--runner", "PortableRunner", f"--job_endpoint={job_endpoint}",
               "--environment_type=EXTERNAL", f"--environment_config={worker_endpoint}"]
        proc = subprocess.run(cmd, env=service_env(), cwd=REPO, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (proc.stderr[-3000:], (tmp_path / "worker_pool.log").read_text()[-3000:])
    assert shard_bytes(portable) == shard_bytes(out)
    assert (portable / "speakers.tsv").read_text() == (out / "speakers.tsv").read_text()
    assert not (portable / ".tmp").exists()


def dataflow_dry_run(manifest: Path, out: Path, *extra: str):
    """The builder's pipeline translated by DataflowRunner into the job it would submit (`--dry_run`: nothing is
    staged or sent; no credentials, project or bucket needed)."""
    import apache_beam as beam

    from pipelines import build_dataset
    from pipelines.options import parse_build_args

    from apache_beam.options.pipeline_options import TestOptions

    job = parse_build_args(["--manifest", str(manifest), "--output", str(out), "--runner", "DataflowRunner",
                            "--project", "test-project", "--region", "europe-west1",
                            "--temp_location", "gs://test-bucket/tmp", "--no_auth",
                            "--setup_file", str(REPO / "setup.py"), *extra])
    job.pipeline_options.view_as(TestOptions).dry_run = True  # not a builder flag: the build would then finalize
    p = beam.Pipeline(options=job.pipeline_options)
    build_dataset.build_pipeline(p, job, str(manifest))
    return p.run(), job


@pytest.mark.slow
def test_dataflow_translates_the_builder_without_a_cloud_project(small_corpus, tmp_path):
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    image = "europe-west1-docker.pkg.dev/p/r/speaker-datasets:0.1.0"
    result, job = dataflow_dry_run(small_corpus, tmp_path / "out", "--sdk_container_image", image)
    proto = result.job.proto_pipeline
    names = {t.unique_name for t in proto.components.transforms.values()}
    for stage in ("ReadManifest", "AnalyzeAudio", "PlanDataset", "CutSegments", "ComputeFeatures", "WriteShards"):
        assert stage in names
    envs = list(proto.components.environments.values())
    assert envs and all(e.urn == common_urns.environments.DOCKER.urn for e in envs)
    payloads = [beam_runner_api_pb2.DockerPayload.FromString(e.payload) for e in envs]
    assert {p.container_image for p in payloads} == {image}
    # the job description Dataflow would receive names the same image and our setup file's options
    options = job.pipeline_options.get_all_options()
    assert options["setup_file"] == str(REPO / "setup.py") and options["sdk_container_image"] == image
    assert job.config.decoder == "pyav"


def requirement_pins(path: Path) -> dict:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]+\])?==([^\s;]+)$", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(3)
    return pins


def test_setup_py_stages_the_pinned_decoder_and_base_pins_agree_with_constraints():
    """Dataflow workers install setup.py's install_requires (requirements/base.txt): the av wheel (the decoder
    build a dataset depends on) is among them, pinned, and every pin there equals the constraints file's."""
    base = requirement_pins(REPO / "requirements" / "base.txt")
    constraints = requirement_pins(REPO / "requirements" / "constraints.txt")
    assert base["av"] == "18.1.0"
    for name, version in base.items():
        assert constraints.get(name) == version, name
    proc = subprocess.run([sys.executable, "-c", "import runpy, setuptools, json, sys\n"
                           "captured = {}\nsetuptools.setup = lambda **kw: captured.update(kw)\n"
                           "runpy.run_path('setup.py')\nprint(json.dumps(captured['install_requires']))"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "av==18.1.0" in proc.stdout


def dockerfile_instructions(path: Path) -> list:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_matches_the_pins_and_keeps_beams_entrypoint():
    import apache_beam
    import av

    steps = dockerfile_instructions(REPO / "Dockerfile")
    base = [args for op, args in steps if op == "FROM"]
    assert len(base) == 1
    m = re.fullmatch(r"apache/beam_python(\d+)\.(\d+)_sdk:(\S+)", base[0])
    assert m, base[0]
    python, beam = (int(m.group(1)), int(m.group(2))), m.group(3)
    pins = requirement_pins(REPO / "requirements" / "base.txt")
    assert beam == pins["apache-beam"] == apache_beam.__version__
    assert python == sys.version_info[:2]  # the image's interpreter is the one the pins were resolved for
    assert pins["av"] == av.__version__
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "-c requirements/constraints.txt -r requirements/base.txt" in runs
    assert "import apache_beam, tensorflow, pipelines.build_dataset, av" in runs  # the image checks itself
    assert [args for op, args in steps if op == "ENTRYPOINT"] == ['["/opt/apache/beam/boot"]']


def test_multi_processing_workers_share_the_cores_between_their_tensorflows(monkeypatch):
    import os

    from apache_beam.options.pipeline_options import PipelineOptions

    from pipelines.build_dataset import share_cores_between_workers

    cores = len(os.sched_getaffinity(0))
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.delenv(var, raising=False)
    share_cores_between_workers(PipelineOptions(["--direct_num_workers", "2", "--direct_running_mode",
                                                 "multi_threading"]))
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ  # one process: TensorFlow's own sizing
    share_cores_between_workers(PipelineOptions([]))
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "3")  # the user's choice stays
    share_cores_between_workers(PipelineOptions(["--direct_num_workers", "2", "--direct_running_mode",
                                                 "multi_processing"]))
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == str(max(1, cores // 2))
    assert os.environ["TF_NUM_INTEROP_THREADS"] == "3"


def test_local_workers_forked_warm_write_the_default_builds_shards(small_corpus, small_dataset, tmp_path):
    """`--local-workers 2` from the command line (the preloading process starts before Beam is imported) writes the
    shards of the default one-worker build."""
    out, _ = small_dataset
    warm = tmp_path / "warm"
    proc = subprocess.run([sys.executable, "-m", "pipelines.build_dataset", "--manifest", str(small_corpus),
                           "--output", str(warm), "--local-workers", "2", "--no-progress"],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shard_bytes(warm) == shard_bytes(out)
    assert (warm / "speakers.tsv").read_text() == (out / "speakers.tsv").read_text()
    assert "direct_running_mode" not in proc.stderr  # Beam's warning about the running mode is not for this runner


def test_local_workers_in_process_and_their_pool_stops_its_workers(small_corpus, small_dataset, tmp_path):
    import multiprocessing

    from tests.conftest import build

    out, _ = small_dataset
    warm = tmp_path / "warm1"
    build(small_corpus, warm, "--local-workers", "1")
    assert shard_bytes(warm) == shard_bytes(out)
    assert multiprocessing.active_children() == []  # every forked worker joined


@pytest.mark.parametrize("flags, message", [
    (["--local-workers", "-1"], "--local-workers must be >= 0"),
    (["--local-workers", "2", "--direct_num_workers", "2"], "leave out --direct_num_workers"),
    (["--local-workers", "2", "--direct_running_mode", "multi_processing"], "leave out --direct_num_workers"),
    (["--local-workers", "2", "--runner", "DataflowRunner"], "cannot be combined with --runner DataflowRunner"),
])
def test_local_workers_refuse_conflicting_runner_flags(flags, message, small_corpus, tmp_path, capsys):
    from pipelines import build_dataset

    with pytest.raises(SystemExit) as exc:
        build_dataset.parse_args(["--manifest", str(small_corpus), "--output", str(tmp_path / "o"), *flags])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_a_local_worker_killed_mid_build_fails_the_build_with_one_line(tmp_path):
    """A worker the system kills (the OOM killer, a signal) while it works: the build stops with a line naming it,
    and leaves no dataset behind."""
    import multiprocessing
    import signal
    import threading

    import numpy as np

    from pipelines import build_dataset
    from pipelines.decode import write_wav

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2):  # two 20-minute recordings: several seconds of decoding each
        samples = (rng.standard_normal(20 * 60 * 16000) * 3000).astype(np.int16)
        write_wav(str(corpus / f"r{i}.wav"), samples)
        lines.append(f'{{"id": "r{i}", "path": "r{i}.wav", "speaker": "t:s{i}"}}\n')
    (corpus / "manifest.jsonl").write_text("".join(lines))
    out = tmp_path / "out"
    killed = []

    def kill_a_working_worker():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            speech = out / ".tmp" / "speech"
            workers = multiprocessing.active_children()
            if workers and speech.is_dir() and any(speech.iterdir()):  # decoding has begun
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_a_working_worker, daemon=True).start()
    with pytest.raises(build_dataset.BuildFailed) as exc:
        build_dataset.run(["--manifest", str(corpus / "manifest.jsonl"), "--output", str(out), "--no-progress",
                           "--local-workers", "2"])
    assert killed and str(exc.value) == f"local worker process {killed[0]} was killed by signal 9"
    assert not list(out.glob("*.tfrecord"))
    assert multiprocessing.active_children() == []


def test_a_local_worker_killed_before_it_connects_fails_the_build_instead_of_hanging(small_corpus, tmp_path):
    """The runner waits for a worker's connection without a timeout: the pool answers for a dead worker."""
    import multiprocessing
    import signal
    import threading

    from pipelines import build_dataset

    killed = []

    def kill_the_first_worker_at_once():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for worker in multiprocessing.active_children():
                os.kill(worker.pid, signal.SIGKILL)
                killed.append(worker.pid)
                return
            time.sleep(0.005)

    threading.Thread(target=kill_the_first_worker_at_once, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(build_dataset.BuildFailed) as exc:
        build_dataset.run(["--manifest", str(small_corpus), "--output", str(tmp_path / "out"), "--no-progress",
                           "--local-workers", "2"])
    assert killed and f"local worker process {killed[0]} was killed by signal 9" in str(exc.value)
    assert time.monotonic() - started < 120
