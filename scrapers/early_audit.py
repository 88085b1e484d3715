"""The scrapers' early acoustic audit (`--audit-model`): each download is checked with the builder's own audit
(pipelines.speaker_gate) and written to OUT/audit.jsonl; once a speaker's first `--audit-first` downloads are
audited and `--audit-max-failures` of them were rejected, that speaker's other items are not downloaded
(reason `speaker_failed_audit` in rejected.jsonl). A rerun restores the verdicts from OUT/audit.jsonl, so a
stopped speaker stays stopped. The builder audits every recording again; this only saves bandwidth.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Optional

from scrapers.jsonl import JsonlAppender, read_jsonl

log = logging.getLogger(__name__)
AUDIT = "audit.jsonl"
REASON = "speaker_failed_audit"


class EarlyAudit:
    def __init__(self, out: str, model: str, first: int, max_failures: int):
        from pipelines.speaker_gate import SpeakerGate

        self.gate = SpeakerGate(model, first=first, max_failures=max_failures)
        path = os.path.join(out, AUDIT)
        for line in read_jsonl(path):  # what earlier runs found
            self.gate.restore(line)
        self.lines = JsonlAppender(path, key=lambda d: d["id"])

    def stopped(self, speaker: str) -> Optional[str]:
        return self.gate.stopped(speaker)

    def check(self, speaker: str, rec_id: str, path: str) -> Dict:
        line = self.gate.check(speaker, rec_id, path)
        self.lines.append(line)
        if line["verdict"] != "keep":
            log.warning("%s: acoustic audit %s (%s)", rec_id, line["verdict"], ", ".join(line["reasons"]))
        return line

    def close(self) -> None:
        self.lines.close()


def make(out: str, model: Optional[str], first: int, max_failures: int, dry_run: bool) -> Optional[EarlyAudit]:
    if not model or dry_run:
        return None
    return EarlyAudit(out, model, first, max_failures)
