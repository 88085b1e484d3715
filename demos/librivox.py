"""The LibriVox step of the README demo, offline: local site → the real scraper CLI → manifest → dataset.

    python -m demos.librivox demo/librivox

Starts the local LibriVox (scrapers/librivox/localsite.py) on 127.0.0.1, runs
`python -m scrapers.librivox --base-url <site> --output OUT` and `python -m pipelines.build_dataset
--manifest OUT/manifest.jsonl --output OUT/dataset` as subprocesses (argument lists), and prints a
summary. Each run starts afresh: the scrape and dataset files of an earlier demo in OUT are replaced
(the site's port, part of the scrape's identity, changes between runs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Dict, Optional, Sequence

from pipelines import arguments
from pipelines.dataset_meta import DatasetMeta
from pipelines.schema import SPLITS
from scrapers.librivox import paging, scrape
from scrapers.librivox.localsite import LocalLibriVox
from scrapers.output import CONFIG_JSON

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a demo run writes into OUT; only these are removed before a new run.
OUTPUTS = ("audio", "dataset", scrape.MANIFEST, scrape.REJECTED, CONFIG_JSON, paging.PAGES_FILE)
SCRAPE_FLAGS = ("--min-interval", "0", "--backoff", "0.05", "--limit", "2", "--no-progress")


def _run(cmd: Sequence[str]) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    subprocess.run(list(cmd), cwd=REPO, env=env, check=True)


def run_demo(out: str, build_args: Sequence[str] = ()) -> Dict:
    """Scrape the local site into `out` and build `out/dataset`; returns the scrape summary, the dataset's
    DatasetMeta and timings."""
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    for name in OUTPUTS:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    t0 = time.monotonic()
    with LocalLibriVox() as site:
        _run([sys.executable, "-m", "scrapers.librivox", "--output", out, "--base-url", site.base, *SCRAPE_FLAGS])
    t1 = time.monotonic()
    dataset = os.path.join(out, "dataset")
    _run([sys.executable, "-m", "pipelines.build_dataset", "--manifest", os.path.join(out, scrape.MANIFEST),
          "--output", dataset, *build_args])
    t2 = time.monotonic()
    with open(os.path.join(out, CONFIG_JSON), encoding="utf-8") as f:
        summary = json.load(f)["last_summary"]
    return {"summary": summary, "dataset": DatasetMeta.read(dataset), "out": out,
            "seconds": {"scrape": round(t1 - t0, 1), "build": round(t2 - t1, 1)}}


def summary_text(result: Dict) -> str:
    s, meta = result["summary"], result["dataset"]
    c = meta.counts
    return "\n".join([
        f"LibriVox demo: {s['readers_selected']} readers, {s['chapters_kept']} chapters, "
        f"{s['hours_in_manifest'] * 3600:.0f} s of audio in {result['out']}/manifest.jsonl "
        f"(rejected: {', '.join(f'{k}={v}' for k, v in s['rejected'].items()) or 'none'})",
        f"Dataset {result['out']}/dataset: {c.inputs} inputs = {c.recordings_with_segments} with segments + "
        f"{c.rejected} rejected; " + ", ".join(f"{k} {meta.examples(k)} examples" for k in SPLITS)
        + f"; {meta.num_speakers} speakers",
        f"Time: scrape {result['seconds']['scrape']} s, build {result['seconds']['build']} s",
    ])


def build_parser() -> argparse.ArgumentParser:
    p = arguments.command_parser("python -m demos.librivox", __doc__)
    p.add_argument("out", help="demo folder (manifest.jsonl, audio/, dataset/)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    a, build_args = build_parser().parse_known_args(argv)
    result = run_demo(a.out, build_args)
    print(summary_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
