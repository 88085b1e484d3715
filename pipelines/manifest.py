"""The manifest contract (scrapers -> builder): `ManifestRecord`, one JSON line per source recording.

The one definition of a manifest line: its fields, their defaults and their validation. The scrapers
write records with `ManifestRecord(...).to_json()`, the builder reads them with `parse_line`; the
folder reader (pipelines.audio_folder) makes the same records. No Beam, no TensorFlow. Field meanings:
ARCHITECTURE.md, "Contracts".
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import posixpath
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

REQUIRED = ("id", "path", "speaker")
KEY_FIELDS = ("recording", "group", "source", "license", "language")  # short keys: no control characters
TEXT_FIELDS = ("speaker_name", "url", "title")  # free text: a control character (tab, newline) becomes a space
NUMBER_FIELDS = ("duration_s", "bytes")
FIELDS = REQUIRED + ("speaker_name", "recording", "group", "source", "url", "license", "language", "title",
                     "duration_s", "sha256", "bytes")
# schemes Beam's FileSystems reads (Google Cloud Storage, S3, HDFS, Azure); anything else is refused
REMOTE_SCHEMES = ("gs", "s3", "hdfs", "azfs")
MAX_KEY_LENGTH = 512

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class ManifestError(ValueError):
    """A manifest line that cannot become a record; `reason` is a short stable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def path_scheme(path: str) -> Optional[str]:
    """`gs` for `gs://b/x.mp3`, None for a local path."""
    m = _SCHEME.match(path)
    return m.group(1).lower() if m else None


def resolve_path(path: str, base_dir: str) -> str:
    """A manifest path is absolute, `gs://…` (or another remote scheme), or relative to the manifest's folder."""
    if path_scheme(path) or os.path.isabs(path):
        return path
    if path_scheme(base_dir):
        return posixpath.join(base_dir, path)
    return os.path.normpath(os.path.join(base_dir, path))


def _text(value: str) -> str:
    return _CONTROL.sub(" ", value)


def _check_key(field: str, value: str) -> str:
    if _CONTROL.search(value) or value != value.strip():
        raise ManifestError("invalid_field", f"{field} {value!r} holds control characters or surrounding spaces")
    if len(value) > MAX_KEY_LENGTH:
        raise ManifestError("invalid_field", f"{field} is longer than {MAX_KEY_LENGTH} characters")
    return value


def _number(field: str, value: Any, integral: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ManifestError("invalid_field", f"{field} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ManifestError("invalid_field", f"{field} is not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0 or (integral and number != int(number)):
        kind = "a whole number >= 0" if integral else "a finite number >= 0"
        raise ManifestError("invalid_field", f"{field} must be {kind}, got {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class ManifestRecord:
    """One source recording. `speaker` is `<source>:<native id>` (e.g. `librivox:9625`); `recording` is the
    unit never split across train/validation/test (default: the id). `extra` keeps a source's own fields
    (book_id, channel, …) for provenance; the builder does not read them. `line` is where a reader found
    the record (not part of the contract)."""

    id: str
    path: str
    speaker: str
    speaker_name: str = ""
    recording: str = ""
    group: str = ""
    source: str = ""
    url: str = ""
    license: str = ""
    language: str = ""
    title: str = ""
    duration_s: Optional[float] = None
    sha256: Optional[str] = None
    bytes: Optional[int] = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)
    line: Optional[int] = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        """Validate and fill the defaults (ManifestError on the first bad field)."""
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        missing = [n for n in REQUIRED if not isinstance(getattr(self, n), str) or not getattr(self, n).strip()]
        if missing:
            raise ManifestError("missing_field", f"missing or empty required field(s): {', '.join(missing)}")
        _check_key("id", self.id)
        _check_key("speaker", self.speaker)
        if _CONTROL.search(self.path):
            raise ManifestError("invalid_field", f"path {self.path!r} holds control characters")
        scheme = path_scheme(self.path)
        if scheme is not None and scheme not in REMOTE_SCHEMES:
            raise ManifestError("unsupported_path", f"path scheme {scheme}:// is not one of "
                                f"{', '.join(s + '://' for s in REMOTE_SCHEMES)} or a local path")
        for name in KEY_FIELDS + TEXT_FIELDS:
            value = getattr(self, name)
            if value is None:
                put(name, "")
            elif not isinstance(value, str):
                if isinstance(value, (dict, list)):
                    raise ManifestError("invalid_field", f"{name} is a JSON {type(value).__name__}, not text")
                put(name, str(value))
        for name in KEY_FIELDS:
            if _CONTROL.search(getattr(self, name)):
                raise ManifestError("invalid_field", f"{name} {getattr(self, name)!r} holds control characters")
        for name in TEXT_FIELDS:
            put(name, _text(getattr(self, name)))
        source, native = split_speaker(self.speaker)
        if not self.recording:
            put("recording", self.id)
        if not self.speaker_name:
            put("speaker_name", native)
        if not self.source:
            put("source", source)
        if self.duration_s is not None:
            put("duration_s", _number("duration_s", self.duration_s, integral=False))
        if self.bytes is not None:
            put("bytes", int(_number("bytes", self.bytes, integral=True)))
        if self.sha256 is not None:
            if not isinstance(self.sha256, str) or not _SHA256.match(self.sha256):
                raise ManifestError("invalid_field", "sha256 must be 64 hexadecimal digits")
            put("sha256", self.sha256.lower())
        put("extra", dict(self.extra or {}))

    # -- JSON --------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: Mapping[str, Any], line: Optional[int] = None) -> "ManifestRecord":
        if not isinstance(data, Mapping):
            raise ManifestError("invalid_json", f"a JSON {type(data).__name__}, not an object")
        fields = {k: data[k] for k in FIELDS if data.get(k) is not None}
        for name in REQUIRED:
            fields.setdefault(name, "")
        extra = {k: v for k, v in data.items() if k not in FIELDS}
        return cls(**fields, extra=extra, line=line)

    def to_json(self) -> Dict[str, Any]:
        """Contract fields first (empty and None left out), then `extra`."""
        out: Dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None and value != "":
                out[name] = value
        out.update({k: v for k, v in self.extra.items() if k not in out and v is not None})
        return out

    def to_line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True) + "\n"

    def resolved(self, base_dir: str) -> "ManifestRecord":
        """The same record with `path` resolved against the manifest's folder."""
        return dataclasses.replace(self, path=resolve_path(self.path, base_dir))

    @property
    def native_speaker(self) -> str:
        return split_speaker(self.speaker)[1]


def is_blank(raw: bytes) -> bool:
    """A manifest line with nothing but ASCII white space: skipped, and not counted as an input. Every other
    line is an input (a record or a rejection); the builder and its accounting share this one definition."""
    return not raw.strip()


def decode_line(raw: bytes) -> str:
    """A manifest line's text; ManifestError('invalid_utf8') instead of silently replacing bad bytes."""
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ManifestError("invalid_utf8", f"not UTF-8 (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None


def parse_line(text: str, base_dir: str, line: Optional[int] = None) -> ManifestRecord:
    """One manifest line -> a validated record with its path resolved, or ManifestError with a reason."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError("invalid_json", f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ManifestError("invalid_json", "nested too deeply") from None
    return ManifestRecord.from_json(data, line).resolved(base_dir)


def to_jsonl(records: Iterable[ManifestRecord]) -> str:
    return "".join(r.to_line() for r in records)


def split_speaker(speaker: str) -> Tuple[str, str]:
    """(`source`, native id) of a speaker key `<source>:<native id>` (split at the first colon); source
    `local` when the key has no colon."""
    if ":" not in speaker:
        return "local", speaker
    source, native = speaker.split(":", 1)
    return source, native
