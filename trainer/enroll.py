"""Enroll a speaker: add the embeddings of their files to a gallery (no audio is kept).

  python -m trainer.enroll --export runs/os/export --gallery team.json --speaker alice a1.wav a2.mp3 a3.flac
  python -m trainer.enroll --export runs/os/export --gallery team.json --speaker bob b1.wav

The gallery (created when missing) keeps, per speaker, the sum and count of the files' unit-length
embeddings; enrolling more files for a speaker refines them. A gallery belongs to the export that made
it. Then: python -m trainer.predict --gallery, python -m trainer.verify --gallery.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import numpy as np

from pipelines.decode import AudioError
from trainer.inference import file_embedding
from trainer.predict import command_parser, load_model


def build_parser() -> argparse.ArgumentParser:
    p = command_parser("python -m trainer.enroll", __doc__)
    p.add_argument("--gallery", required=True, help="gallery file (JSON), created when missing")
    p.add_argument("--speaker", required=True, help="the name to enroll the files under")
    p.add_argument("audio", nargs="+", help="audio files of that speaker")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not args.speaker.strip() or any(ord(c) < 32 for c in args.speaker):
        p.error("--speaker must be a name without control characters")
    from trainer.gallery import Gallery, GalleryError

    model, info = load_model(p, args, open_set=True)
    try:
        gallery = Gallery.for_model(args.gallery, info.model_id, info.embedding_dim, create=True)
    except GalleryError as exc:
        p.error(str(exc))
    embeddings, used = [], []
    for path in args.audio:
        try:
            embeddings.append(file_embedding(model, info, path, args.min_speech_seconds))
            used.append(path)
        except AudioError as exc:
            print(f"trainer.enroll: {path}: {exc.reason}: {exc.message}", file=sys.stderr)
    if not embeddings:
        print(f"trainer.enroll: error: no usable file for {args.speaker}; the gallery is unchanged", file=sys.stderr)
        return 1
    spk = gallery.enroll(args.speaker, np.stack(embeddings), used)
    gallery.write(args.gallery)
    print(f"enrolled {args.speaker}: {len(used)} file(s) added, {spk.count} in all; {len(gallery.speakers)} "
          f"speaker(s) in {args.gallery}")
    return 0 if len(used) == len(args.audio) else 1


if __name__ == "__main__":
    sys.exit(main())
