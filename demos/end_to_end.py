"""The README demo, end to end and offline: make the demo corpus, build a dataset from it (Beam),
compute tf.Transform statistics, train the default model, name the speakers of held-out files, then
enroll two voices the dataset never heard and verify new recordings against them.

  python -m demos.end_to_end --output demo                  # corpus, dataset, job and held-out files under demo/
  python -m demos.end_to_end --output demo --no-train       # stop after the dataset
  python -m demos.end_to_end --output demo --segment-seconds 5 --local-workers 2

Flags other than the ones below go to pipelines.build_dataset. A second run reuses the corpus,
rebuilds the dataset in place (same configuration) and retrains from scratch.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import List, Optional, Sequence, Tuple

from demos import corpus as demo_corpus
from pipelines import arguments, build_dataset, logs, process_lifecycle, report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_heldout(corpus_dir: str, out_dir: str, speakers: int, recordings: int, seconds: float) -> List[Tuple[str, str]]:
    """One new recording per speaker, never in the dataset (take number past the corpus's): (path, speaker)."""
    with open(os.path.join(corpus_dir, "corpus.json"), encoding="utf-8") as f:
        generator = json.load(f)["generator_used"]
    ffmpeg = demo_corpus.find_ffmpeg()
    os.makedirs(out_dir, exist_ok=True)
    files = []
    for s in range(1, speakers + 1):
        rec = demo_corpus.make_recording(s, recordings + 1, s, seconds, ["mp3", "ogg", "flac", "wav"],
                                         generator, out_dir, ffmpeg)
        files.append((os.path.join(out_dir, rec.path.split("/", 1)[1]), rec.speaker))
    return files


def new_voices(corpus_dir: str, out_dir: str, first_speaker: int, takes: int, seconds: float) -> dict:
    """Two voices the dataset never heard (the corpus's next voices): {speaker: [paths of `takes` recordings]}."""
    with open(os.path.join(corpus_dir, "corpus.json"), encoding="utf-8") as f:
        generator = json.load(f)["generator_used"]
    ffmpeg = demo_corpus.find_ffmpeg()
    os.makedirs(out_dir, exist_ok=True)
    voices = {}
    for s in (first_speaker, first_speaker + 1):
        recs = [demo_corpus.make_recording(s, t, s, seconds, ["wav", "flac"], generator, out_dir, ffmpeg)
                for t in range(1, takes + 1)]
        voices[recs[0].speaker.split(":", 1)[1]] = [os.path.join(out_dir, r.path.split("/", 1)[1]) for r in recs]
    return voices


def enroll_and_verify(out: str, export_dir: str, voices: dict) -> None:
    """Enroll each new voice from its first recording, then verify its second against both: the commands a
    user runs (python -m trainer.enroll, trainer.verify)."""
    import subprocess
    import sys

    gallery = os.path.join(out, "gallery.json")
    if os.path.exists(gallery):
        os.remove(gallery)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], capture_output=True, text=True, env=env)  # noqa: E731
    print("\nNew voices, never in the dataset: enrolled from one recording each, then verified:")
    for name, files in voices.items():
        proc = run("trainer.enroll", "--export", export_dir, "--gallery", gallery, "--speaker", name, files[0])
        print(f"  {proc.stdout.strip() or proc.stderr.strip().splitlines()[-1]}")
    for name, files in voices.items():
        for against in voices:
            proc = run("trainer.verify", "--export", export_dir, "--gallery", gallery, "--speaker", against,
                       files[1])
            print(f"  {os.path.relpath(files[1], out)} as {against}: {proc.stdout.strip()}")
    print(f"Gallery: {gallery}  (try: python -m trainer.predict --export {export_dir} --gallery {gallery} FILE)")


def train_and_predict(out: str, dataset: str, heldout: List[Tuple[str, str]], epochs: int) -> int:
    """Preprocess, train, predict; returns how many held-out files were named correctly."""
    from pipelines import preprocess
    from trainer import export, predict, task

    preprocess.run(["--dataset", dataset])
    job = os.path.join(out, "job")
    shutil.rmtree(job, ignore_errors=True)
    args = task.get_args(["--dataset", dataset, "--job-dir", job, "--epochs", str(epochs), "--patience", "3"])
    metrics = task.train_and_evaluate(args)
    model, info = export.load(metrics["export_dir"])
    correct = 0
    print(f"\n{'held-out file':<52} {'true':<10} {'predicted':<10} {'name':<28} confidence")
    for path, speaker in heldout:
        r = predict.predict_file(model, info, path)
        correct += r["speaker"] == speaker
        print(f"{os.path.relpath(path, out):<52} {speaker:<10} {r['speaker']:<10} {r['speaker_name'][:28]:<28} "
              f"{r['confidence']:.3f}")
    t = metrics["test"]
    print(f"\nTest split: accuracy {t['accuracy']:.4f}, macro F1 {t['macro_f1']:.4f}, EER {t['eer']:.4f} "
          f"({t['num_examples']} segments); held-out files named correctly: {correct}/{len(heldout)}")
    print(f"Job:     {job}/  (metrics.json, report.html, report.md, confusion.png, logs/)")
    print(f"Export:  {metrics['export_dir']}  (try: python -m trainer.predict --export {metrics['export_dir']} FILE)")
    return correct


def build_parser() -> argparse.ArgumentParser:
    parser = arguments.command_parser("python -m demos.end_to_end", __doc__)
    arguments.flag(parser, "--output", "--out", dest="out", default="demo", help="demo folder (default: %(default)s)")
    parser.add_argument("--speakers", type=int, default=6, help="(default: %(default)s)")
    parser.add_argument("--recordings", type=int, default=8, help="recordings per speaker (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per recording (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs (default: %(default)s)")
    parser.add_argument("--no-train", action="store_true", help="stop after building the dataset")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args, build_args = build_parser().parse_known_args(argv)
    logs.setup()
    process_lifecycle.quiet_tensorflow(verbose="--verbose" in build_args)
    out = os.path.abspath(args.out)
    corpus = os.path.join(out, "corpus")
    manifest = demo_corpus.make_corpus(corpus, args.speakers, args.recordings, args.seconds)
    dataset = os.path.join(out, "dataset")
    meta = build_dataset.run(["--manifest", manifest, "--output", dataset, *build_args])
    print(report.summary_text(meta))
    print(f"\nCorpus:  {manifest}")
    print(f"Dataset: {dataset}/  (shards, speakers.tsv, dataset.json, errors/)")
    print(f"Report:  {os.path.join(dataset, 'report', 'index.html')} (and README.md beside it)")
    if not args.no_train:
        heldout = make_heldout(corpus, os.path.join(out, "heldout"), args.speakers, args.recordings, args.seconds)
        train_and_predict(out, dataset, heldout, args.epochs)
        voices = new_voices(corpus, os.path.join(out, "new_voices"), args.speakers + 1, 2, args.seconds)
        enroll_and_verify(out, os.path.join(out, "job", "export"), voices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
