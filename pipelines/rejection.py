"""`Rejection`: one line of OUT/errors/<stage>.jsonl, an input the builder could not use and why.

Every stage of the builder emits these instead of dropping anything; finalize counts them against the
inputs. `reason` is a short stable code (`undecodable`, `too_short`, `duplicate_id`, ...), `message` a
sentence for people. No Beam.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Mapping, Optional

STAGES = ("manifest", "decode", "segment", "audit", "plan")


@dataclasses.dataclass(frozen=True)
class Rejection:
    id: str
    path: str
    stage: str
    reason: str
    message: str
    line: Optional[int] = None  # manifest line, when the input came from a manifest

    def to_json(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Rejection":
        return cls(id=data.get("id", ""), path=data.get("path", ""), stage=data["stage"], reason=data["reason"],
                   message=data.get("message", ""), line=data.get("line"))

    def sort_key(self):
        return self.stage, self.id, self.line or 0, self.path
