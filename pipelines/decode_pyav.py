"""In-process decoding with PyAV (FFmpeg's libraries from the `av` wheel): any audio file -> 16 kHz mono int16.

The backend `pipelines.decode` uses by default. The file is opened by Python and handed to FFmpeg as a
file object, so a manifest path is only ever a local file name: never a URL, a protocol (`http:`, `pipe:`)
or an option. Frames are demuxed and decoded one packet at a time and go through one libavfilter graph
(abuffer -> aformat 16 kHz mono s16 -> abuffersink, the graph the ffmpeg command line builds for
`-ac 1 -ar 16000`, so libswresample downmixes and resamples exactly as it does there), whose sink hands out
chunks of a fixed size: memory stays flat whatever the file's length. PyAV releases the GIL while FFmpeg
demuxes, decodes and resamples.

What the ffmpeg command line reported on stderr is collected here from FFmpeg's log (captured per thread)
and from the errors PyAV raises, into the same `DecodeInfo`, so `pipelines.decode.check_decode` gives the
same reasons for the same bad inputs.
"""
from __future__ import annotations

import collections
import threading
from typing import Deque, Iterator, List

import av
import numpy as np

from pipelines.decode import CHUNK_SAMPLES, AudioError, DecodeInfo, is_error_line, regular_file_size
from pipelines.schema import SAMPLE_RATE

OUTPUT_FORMAT, OUTPUT_LAYOUT = "s16", "mono"
LOG_LEVEL = av.logging.WARNING  # what the ffmpeg command line printed at -loglevel info, less its chatter
_setup_lock = threading.Lock()
_logging_ready = False


def build() -> str:
    """The decoder build, for dataset.json and the README: the same build decodes the same bytes."""
    return f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"


def enable_ffmpeg_log() -> None:
    """Route FFmpeg's warnings and errors to PyAV's per-thread capture (off by default in PyAV), every
    repetition included (decoding errors are counted)."""
    global _logging_ready
    with _setup_lock:
        if not _logging_ready:
            av.logging.set_level(LOG_LEVEL)
            av.logging.set_skip_repeated(False)
            _logging_ready = True


class Complaints:
    """FFmpeg's complaints about one input: decoding errors counted as the command line's stderr showed them."""

    def __init__(self) -> None:
        self.count = 0
        self.tail: Deque[str] = collections.deque(maxlen=5)

    def add(self, text: str) -> None:
        self.count += 1
        self.tail.append(text.strip())

    def add_logs(self, logs: List) -> None:
        """Captured (level, context, message) log lines that the command line's stderr counted as decoding
        errors (`pipelines.decode.is_error_line`: "invalid residual", "overread", ...). Others are not: an Ogg
        page failing its CRC is skipped by the demuxer and shows as a shorter decode (`truncated`), as before."""
        for _, name, message in logs:
            line = f"[{name}] {message.strip()}" if name else message.strip()
            if is_error_line(line):
                self.add(line)


def default_layout_name(layout) -> str:
    """The layout's name; a count of channels without an order (a plain WAV header) becomes the default layout
    for that count, as the ffmpeg command line guesses it ("2 channels" -> "stereo")."""
    if layout.name == f"{layout.nb_channels} channels":
        return av.AudioLayout(f"{layout.nb_channels}c").name
    return layout.name


def mono_int16(frame) -> np.ndarray:
    """The samples of a mono int16 frame (a view of its buffer, which it keeps alive; a quarter of the cost of
    `to_ndarray`, which stacks planes)."""
    return np.frombuffer(frame.planes[0], dtype="<i2", count=frame.samples)


PASSTHROUGH = {("s16", SAMPLE_RATE, "mono"), ("s16p", SAMPLE_RATE, "mono")}  # already what the builder wants


class MonoResampler:
    """Decoded frames -> 16 kHz mono int16 chunks of `chunk_samples` (the last one shorter).

    Frames go through one libavfilter graph, rebuilt (after flushing the old one) when their format, rate or
    layout changes mid-stream, as the command line does. They are pushed in batches and the sink drained
    once per chunk's worth of input: Python crosses into FFmpeg about once per output chunk, not once per
    frame. Frames that are already 16 kHz mono int16 skip the graph (its setup and flush cost about 1 ms a
    file; libswresample would copy them unchanged)."""

    def __init__(self, chunk_samples: int = CHUNK_SAMPLES):
        self.chunk_samples = chunk_samples
        self.graph = None
        self.key = None
        self.pending = 0
        self.threshold = 0
        self.held: List[np.ndarray] = []  # passthrough samples not yet a whole chunk
        self.held_samples = 0

    def _configure(self, frame) -> None:
        self.key = (frame.format.name, frame.sample_rate, frame.layout.name)
        if self.key in PASSTHROUGH:
            return
        graph = av.filter.Graph()
        src = graph.add_abuffer(sample_rate=frame.sample_rate, format=frame.format.name,
                                layout=frame.layout.name, time_base=frame.time_base)
        chain = [src]
        if frame.format.bytes <= 2:
            # 8- and 16-bit input is resampled in 16-bit integers, as libswresample up to FFmpeg 5.1 chose by
            # itself (FFmpeg 8 picks float): the output then equals the command line's bit for bit
            chain.append(graph.add("aresample", internal_sample_fmt="s16p"))
        chain.append(graph.add("aformat", sample_rates=str(SAMPLE_RATE), sample_fmts=OUTPUT_FORMAT,
                               channel_layouts=OUTPUT_LAYOUT))
        sink = graph.add("abuffersink")
        chain.append(sink)
        for a, b in zip(chain, chain[1:]):
            a.link_to(b)
        graph.configure()
        graph.set_audio_frame_size(self.chunk_samples)
        self.graph, self.src, self.sink = graph, src, sink
        # input samples that make one output chunk, so the sink is asked once per chunk
        self.threshold = max(1, self.chunk_samples * frame.sample_rate // SAMPLE_RATE)
        self.pending = 0

    def push(self, frame) -> List[np.ndarray]:
        out: List[np.ndarray] = []
        if frame.samples == 0:
            return out
        if (frame.format.name, frame.sample_rate, frame.layout.name) != self.key:
            out += self.flush()
            self._configure(frame)
        if self.graph is None:
            return out + self._hold(mono_int16(frame))
        self.src.push(frame)
        self.pending += frame.samples
        if self.pending >= self.threshold:
            self.pending = 0
            out += self._drain()
        return out

    def flush(self) -> List[np.ndarray]:
        """What is still held (the input has ended, or its format is about to change)."""
        out: List[np.ndarray] = []
        if self.held:
            out.append(np.concatenate(self.held))
            self.held, self.held_samples = [], 0
        if self.graph is not None:
            self.src.push(None)
            out += self._drain()
        self.graph, self.key = None, None
        return out

    def _hold(self, samples: np.ndarray) -> List[np.ndarray]:
        """Passthrough samples cut into whole chunks, as the graph's sink would hand them out."""
        self.held.append(samples)
        self.held_samples += samples.size
        if self.held_samples < self.chunk_samples:
            return []
        block = np.concatenate(self.held)
        whole = block.size - block.size % self.chunk_samples
        self.held = [block[whole:]] if whole < block.size else []
        self.held_samples = block.size - whole
        return [block[i:i + self.chunk_samples] for i in range(0, whole, self.chunk_samples)]

    def _drain(self) -> List[np.ndarray]:
        out = []
        while True:
            try:
                frame = self.sink.pull()
            except (av.error.BlockingIOError, EOFError):
                return out
            if frame.samples:
                out.append(mono_int16(frame))


def stream_codec_name(stream) -> str:
    ctx = stream.codec_context
    return ctx.codec.canonical_name if ctx is not None else "none"


def describe(container, stream, info: DecodeInfo) -> None:
    """What the headers say, as the command line's `Input #0` dump said it (duration rounded to 10 ms)."""
    info.codec = stream_codec_name(stream)
    ctx = stream.codec_context
    if ctx is not None:
        info.input_sample_rate = ctx.sample_rate
        info.channels = default_layout_name(ctx.layout)
    if container.duration is not None and container.duration > 0:
        info.declared_duration_s = round((container.duration + 5000) // 10000 / 100, 2)


def open_input(f, shown: str):
    """The container of the open file `f` (never a URL: FFmpeg reads through the file object); the name is
    only a hint for format probing. AudioError('undecodable') when FFmpeg does not recognise it."""
    try:
        return av.open(f, mode="r")
    except av.FFmpegError as exc:
        raise AudioError("undecodable", f"{shown}: {exc.strerror or exc}") from None


def first_audio_stream(container, shown: str):
    """The first audio stream (ffmpeg's `-map 0:a:0`); AudioError when there is none or no decoder for it."""
    if not container.streams.audio:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise AudioError("no_audio_stream", f"{shown} has no audio stream (streams: {kinds})")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise AudioError("undecodable", f"no decoder found for the audio stream of {shown} (codec none)")
    ctx = stream.codec_context
    if ctx.layout.name == f"{ctx.layout.nb_channels} channels":  # a count without an order: guess, as ffmpeg does
        ctx.layout = default_layout_name(ctx.layout)
    return stream


def iter_decoded(path: str, info: DecodeInfo, chunk_samples: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """Yield int16 chunks of `path` decoded to 16 kHz mono (all `chunk_samples` long but the last). Raises
    AudioError when FFmpeg cannot open or decode it; `info` is complete when the generator is exhausted.
    A packet that fails to decode is counted (and skipped) as the command line does; so is a demuxing error,
    which ends the input."""
    if regular_file_size(path) == 0:
        raise AudioError("empty_file", "the file has 0 bytes")
    enable_ffmpeg_log()
    complaints = Complaints()
    with open(path, "rb") as f:  # a regular file, checked above
        with av.logging.Capture() as logs:
            container = open_input(f, path)
        try:
            complaints.add_logs(logs)
            with av.logging.Capture() as logs:
                stream = first_audio_stream(container, path)
                describe(container, stream, info)
                ctx = stream.codec_context
                packets = container.demux(stream)
                resampler = MonoResampler(chunk_samples)
            done, flushed = False, False
            while not done:
                ready: List[np.ndarray] = []
                with av.logging.Capture() as logs:  # entered and left between yields: captures never interleave
                    while not ready and not done:
                        try:
                            packet = next(packets)  # its last packets are empty ones: they flush the decoder
                        except StopIteration:
                            packet, done = None, True
                        except av.FFmpegError as exc:  # the demuxer gave up: the command line ends the input too
                            complaints.add(f"error reading the input: {exc.strerror or exc}")
                            packet, done, flushed = None, True, False
                        frames = []
                        if packet is not None or not flushed:
                            try:
                                frames = ctx.decode(packet)
                            except av.FFmpegError as exc:
                                complaints.add(f"error while decoding: {exc.strerror or exc}")
                            flushed = packet is None or packet.size == 0
                        for frame in frames:
                            ready += resampler.push(frame)
                        if done:
                            ready += resampler.flush()
                complaints.add_logs(logs)
                for chunk in ready:
                    info.decoded_samples += chunk.size
                    yield chunk
        finally:
            container.close()
    info.decode_errors += complaints.count
    info.stderr_tail = "\n".join(complaints.tail)


def probe(path: str) -> DecodeInfo:
    """What the headers say (codec, rate, channels, duration), read in-process without decoding the audio
    (FFmpeg reads the headers and, for some formats, a few packets). AudioError('not_audio') when the file is
    not audio FFmpeg recognises or has no audio stream."""
    regular_file_size(path)
    enable_ffmpeg_log()
    info = DecodeInfo()
    with open(path, "rb") as f:
        try:
            container = open_input(f, path)
        except AudioError as exc:
            raise AudioError("not_audio", exc.message) from None
        try:
            if not container.streams.audio:
                raise AudioError("not_audio", f"{path} has no audio stream")
            describe(container, container.streams.audio[0], info)
        finally:
            container.close()
    return info

