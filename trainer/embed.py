"""One speaker embedding per audio file, from an exported model.

  python -m trainer.embed --export runs/os/export talk.mp3 clip.wav          # a table (the first values)
  python -m trainer.embed --export runs/os/export --json *.flac              # one JSON object per file

A file's embedding is the mean of the unit-length embeddings of its 3-second pieces of speech (its
segments, for a closed-set export), normalised to unit length: compare two with a dot product. An
unreadable or too short file gets a one-line error on stderr; the others are still given (exit code 1).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from pipelines.decode import AudioError
from trainer.inference import file_embedding
from trainer.predict import command_parser, load_model


def build_parser() -> argparse.ArgumentParser:
    p = command_parser("python -m trainer.embed", __doc__)
    p.add_argument("audio", nargs="+", help="audio files (any format ffmpeg reads)")
    p.add_argument("--json", action="store_true", help="one JSON object per file: path, embedding")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    model, info = load_model(p, args, open_set=True)
    failed = 0
    for path in args.audio:
        try:
            emb = file_embedding(model, info, path, args.min_speech_seconds)
        except AudioError as exc:
            print(f"trainer.embed: {path}: {exc.reason}: {exc.message}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            print(json.dumps({"path": path, "embedding": [round(float(v), 6) for v in emb]}), flush=True)
        else:
            print(f"{path}\t{len(emb)} dims\t" + " ".join(f"{v:+.3f}" for v in emb[:6]) + " …")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
