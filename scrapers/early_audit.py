"""The scrapers' early acoustic audit (`--audit-model`): each download is checked with the builder's own audit
(pipelines.speaker_gate) and written to OUT/audit.jsonl; once a speaker's first `--audit-first` downloads are
audited and `--audit-max-failures` of them were rejected, that speaker's other items are not downloaded
(reason `speaker_failed_audit` in rejected.jsonl). A rerun restores the verdicts from OUT/audit.jsonl, so a
stopped speaker stays stopped. The builder audits every recording again; this only saves bandwidth.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Dict, Optional

from scrapers.jsonl import JsonlAppender, read_jsonl

log = logging.getLogger(__name__)
AUDIT = "audit.jsonl"
REASON = "speaker_failed_audit"


class EarlyAudit:
    """OUT/audit.jsonl: each line appended as soon as a file is audited (a killed run loses nothing), the whole
    file rewritten at the end with the final verdicts (speaker_mismatch is re-judged as a speaker's files arrive;
    a later line for the same id wins)."""

    def __init__(self, out: str, model: str, first: int, max_failures: int):
        from pipelines.speaker_gate import SpeakerGate

        self.gate = SpeakerGate(model, first=first, max_failures=max_failures)
        self.path = os.path.join(out, AUDIT)
        for line in read_jsonl(self.path):  # what earlier runs found
            self.gate.restore(line)
        self.lines = JsonlAppender(self.path, key=lambda d: (d["id"], json.dumps(d, sort_keys=True)))

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
        final = {line_id: line for seen in self.gate.seen.values() for line_id, line in seen.lines.items()}
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for line_id in sorted(final):
                f.write(json.dumps(final[line_id], sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)


def make(out: str, model: Optional[str], first: int, max_failures: int, dry_run: bool) -> Optional[EarlyAudit]:
    if not model or dry_run:
        return None
    return EarlyAudit(out, model, first, max_failures)
