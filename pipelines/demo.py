"""The README demo: make the embedded demo corpus (offline), build a dataset from it, say where it is.

  python -m pipelines.demo --out demo            # corpus in demo/corpus, dataset in demo/dataset
  python -m pipelines.demo --out demo --segment-seconds 5 --direct_num_workers 2 --direct_running_mode multi_processing

Any flag other than --out, --speakers, --recordings and --seconds goes to pipelines.build_dataset.
A second run reuses the corpus and rebuilds the dataset in place when the configuration is unchanged.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from pipelines import build_dataset, demo_corpus, report


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="demo folder (default: %(default)s)")
    parser.add_argument("--speakers", type=int, default=6, help="(default: %(default)s)")
    parser.add_argument("--recordings", type=int, default=8, help="recordings per speaker (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per recording (default: %(default)s)")
    args, build_args = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    out = os.path.abspath(args.out)
    manifest = demo_corpus.make_corpus(os.path.join(out, "corpus"), args.speakers, args.recordings, args.seconds)
    dataset = os.path.join(out, "dataset")
    meta = build_dataset.run(["--manifest", manifest, "--output", dataset, *build_args])
    print(report.summary_text(meta))
    print(f"\nCorpus:  {manifest}")
    print(f"Dataset: {dataset}/  (shards, speakers.tsv, dataset.json, errors/)")
    print(f"Report:  {os.path.join(dataset, 'report', 'README.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
