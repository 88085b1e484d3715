"""End-to-end demonstrations that run the whole system offline; they sit above every other package.

- `python -m demos.end_to_end`: make a demo corpus, build a dataset (Beam), tf.Transform, train, name
  held-out files (what `scripts/demo.sh` runs).
- `python -m demos.librivox OUT`: scrape a local LibriVox site with the real scraper, build its dataset.
- `demos.corpus`: the synthetic multi-speaker corpus (espeak-ng voices or numpy) the demo, tests and
  benchmarks use.
"""
