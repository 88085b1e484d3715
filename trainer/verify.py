"""Verify: are two recordings the same speaker, or is a recording an enrolled speaker?

  python -m trainer.verify --export runs/os/export a.wav b.mp3
  python -m trainer.verify --export runs/os/export --gallery team.json --speaker alice unknown.wav

Prints the score (cosine of the two embeddings, s-normalised when the export does so) and the decision at
the export's verification threshold, calibrated on its test trials (`--threshold` overrides). `--json` gives
one object. Exit code 0 for the same speaker, 3 for different speakers, 1 or 2 for errors.
"""
from __future__ import annotations

import json
import sys
from typing import Optional, Sequence

from pipelines import arguments
from pipelines.decode import AudioError
from trainer.inference import file_embedding
from trainer.predict import command_parser, decision_threshold, load_model
from trainer.verification import score_matrix

DIFFERENT = 3


def build_parser():
    p = command_parser("python -m trainer.verify", __doc__)
    p.add_argument("audio", nargs="+", help="two files, or one file with --gallery and --speaker")
    p.add_argument("--gallery", help="gallery file of enrolled speakers (python -m trainer.enroll)")
    p.add_argument("--speaker", help="with --gallery: the enrolled speaker to verify against")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the export's)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if bool(args.gallery) != bool(args.speaker):
        p.error("--gallery and --speaker go together")
    if len(args.audio) != (1 if args.gallery else 2):
        p.error("give two files, or one file with --gallery and --speaker")
    missing = [m for m in [args.gallery and arguments.local_path_problem("--gallery", args.gallery, kind="file")]
               + [arguments.local_path_problem("audio file", path, kind="file") for path in args.audio] if m]
    if missing:  # the decision needs every file: refused before TensorFlow starts
        p.error(missing[0])
    from trainer.gallery import Gallery, GalleryError

    model, info = load_model(p, args, open_set=True)
    from trainer.export import load_cohort

    threshold = decision_threshold(p, info, args.threshold)
    cohort = load_cohort(args.model) if info.score_normalization == "as-norm" else None
    try:
        if args.gallery:
            gallery = Gallery.for_model(args.gallery, info.model_id, info.embedding_dim)
            if args.speaker not in gallery.speakers:
                p.error(f"{args.speaker} is not enrolled in {args.gallery} (enrolled: "
                        f"{', '.join(sorted(gallery.speakers)) or 'nobody'})")
            other = gallery.speakers[args.speaker].centroid[None, :]
            against = f"{args.speaker} ({args.gallery})"
        else:
            other = file_embedding(model, info, args.audio[1], args.min_speech_seconds)[None, :]
            against = args.audio[1]
        emb = file_embedding(model, info, args.audio[0], args.min_speech_seconds)[None, :]
    except GalleryError as exc:
        p.error(str(exc))
    except AudioError as exc:
        print(f"trainer.verify: error: {exc.reason}: {exc.message}", file=sys.stderr)
        return 1
    score = float(score_matrix(emb, other, cohort)[0, 0])
    same = score >= threshold
    result = {"file": args.audio[0], "against": against, "score": round(score, 4), "threshold": round(threshold, 4),
              "same_speaker": same, "score_normalization": info.score_normalization}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{'same speaker' if same else 'different speakers'}: score {score:.3f} "
              f"{'>=' if same else '<'} threshold {threshold:.3f}  ({args.audio[0]} vs {against})")
    return 0 if same else DIFFERENT


if __name__ == "__main__":
    sys.exit(main())
