"""The scrapers' early audit: the builder's acoustic checks on a speaker's first downloads, so that a channel or
reader whose audio fails stops costing bandwidth.

`SpeakerGate.check(speaker, path)` decodes and strips the file as the builder does (pipelines.silence), measures
it with the builder's own functions (pipelines.embedding.embed_speech, pipelines.audit) and returns its audit line
(the schema of OUT/audit.jsonl). Once `first` downloads of a speaker are audited, the speaker is stopped when at
least `max_failures` of them were rejected (`multi_speaker`, `speaker_mismatch` among themselves, `duplicate_audio`,
a quality gate that rejects: low_snr, clipped): `stopped(speaker)` then gives the reason, and the scraper skips that speaker's other items.
The builder audits every recording again; this only saves downloads.
"""
from __future__ import annotations

import dataclasses
import tempfile
from typing import Dict, List, Optional

import numpy as np

from pipelines import audit, speech_file
from pipelines.decode import AudioError
from pipelines.embedding import WindowEmbedder, embed_speech
from pipelines.quality import Quality, QualityGates
from pipelines.quality import reasons as quality_reasons
from pipelines.silence import SilenceParams, analyze_and_strip


@dataclasses.dataclass
class _Seen:
    ids: List[str] = dataclasses.field(default_factory=list)  # every audited file, in order
    lines: Dict[str, Dict] = dataclasses.field(default_factory=dict)
    measured: List[str] = dataclasses.field(default_factory=list)  # the ones with an embedding
    embeddings: List[np.ndarray] = dataclasses.field(default_factory=list)


class SpeakerGate:
    def __init__(self, export_dir: str, checks: audit.SpeakerChecks = audit.SpeakerChecks(), first: int = 3,
                 max_failures: int = 2, silence: SilenceParams = SilenceParams(), decoder: Optional[str] = None,
                 gates: QualityGates = QualityGates()):
        if first < 1 or not 1 <= max_failures <= first:
            raise ValueError("--audit-first must be >= 1 and --audit-max-failures between 1 and --audit-first")
        checks.validate()
        gates.validate()
        self.gates = gates
        self.embedder = WindowEmbedder(export_dir)
        self.checks, self.first, self.max_failures, self.silence = checks, first, max_failures, silence
        self.decoder = decoder or self.embedder.info.build_config.decoder
        self.seen: Dict[str, _Seen] = {}
        self.digests: Dict[str, str] = {}  # PCM sha256 -> the first id with it

    def stopped(self, speaker: str) -> Optional[str]:
        """Why the speaker's other items should not be downloaded, or None."""
        seen = self.seen.get(speaker)
        if seen is None or len(seen.ids) < self.first:
            return None
        first = [seen.lines[i] for i in seen.ids[:self.first]]
        failed = [d for d in first if d["verdict"] == "reject"]
        if len(failed) < self.max_failures:
            return None
        reasons = sorted({r for d in failed for r in d["reasons"]})
        return (f"{len(failed)} of its first {self.first} downloads failed the acoustic audit "
                f"({', '.join(reasons)})")

    def restore(self, line: Dict) -> None:
        """An audit line of an earlier run (OUT/audit.jsonl): its verdict counts for `stopped`; its embedding is
        not kept, so speaker_mismatch judges the files audited in this run."""
        seen = self.seen.setdefault(line["speaker"], _Seen())
        if line["id"] not in seen.lines:
            seen.ids.append(line["id"])
        seen.lines[line["id"]] = dict(line)

    def check(self, speaker: str, rec_id: str, path: str) -> Dict:
        """The audit line of one downloaded file (verdict `reject` with reason `undecodable` or `too_short` when it
        cannot be measured); speaker_mismatch is re-judged over all of the speaker's audited files."""
        seen = self.seen.setdefault(speaker, _Seen())
        line: Dict = {"id": rec_id, "speaker": speaker, "reasons": []}
        with tempfile.TemporaryFile() as speech:
            try:
                analysis = analyze_and_strip(path, speech.write, self.silence, decoder=self.decoder,
                                             measure_quality=True)
            except AudioError as exc:
                line.update(verdict="reject", reasons=[exc.reason], message=exc.message)
                seen.ids.append(rec_id)
                seen.lines[rec_id] = line
                return line
            voices, embedding, _ = embed_speech(self.embedder, self.checks, analysis.speech_samples,
                                                lambda start, n: speech_file.read_window(speech, start, n))
        line["speech_seconds"] = round(analysis.speech_s, 3)
        line.update(voices.to_json())
        if voices.voices >= 2:
            line["reasons"].append("multi_speaker")
        measured = Quality.from_json(analysis.quality)
        line["reasons"] += quality_reasons(measured, self.gates)
        line["quality"] = measured.to_json()
        digest = analysis.pcm_sha256
        if digest in self.digests and self.digests[digest] != rec_id:
            line["reasons"].append("duplicate_audio")
            line["duplicate_of"] = self.digests[digest]
        self.digests.setdefault(digest, rec_id)
        seen.ids.append(rec_id)
        seen.lines[rec_id] = line
        seen.measured.append(rec_id)
        seen.embeddings.append(embedding)
        sims = audit.speaker_mismatches(seen.measured, np.stack(seen.embeddings), self.checks)
        for i, sim in sims.items():
            d = seen.lines[i]
            d["speaker_similarity"] = None if sim is None else round(sim, 4)
            d["reasons"] = [r for r in d["reasons"] if r != "speaker_mismatch"]
            if sim is not None and sim < self.checks.min_speaker_similarity:
                d["reasons"].append("speaker_mismatch")
            d["reasons"].sort(key=audit.REASONS.index)
            d["verdict"] = audit.verdict(d["reasons"])
        return line

