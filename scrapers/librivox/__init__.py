"""LibriVox scraper: solo-read chapters found through the API, book pages and the JS catalogue search.

    python -m scrapers.librivox --output data/librivox --language English --max-readers 20 --dry-run
    python -m scrapers.librivox --output data/librivox --search --language English --max-readers 20

Writes OUT/audio/<reader>/<book>-<section>.mp3, OUT/manifest.jsonl (pipelines.manifest), OUT/rejected.jsonl,
OUT/api_pages.jsonl (the API pages fetched so far) and OUT/scrape.json; reruns skip what is done and
continue API paging where it stopped. `python -m scrapers.librivox.localsite` serves a local LibriVox
for tests; `python -m demos.librivox OUT` scrapes it and builds a dataset (the README demo).
Every request is bounded (--timeout, --min-rate, --max-page-mb, --max-file-mb, --max-retry-after) and on the
allow-list; one run per --output at a time (OUT/.lock).
Exit status: 0 done (failures are recorded in OUT/rejected.jsonl), 1 failures and nothing kept, 2 bad arguments
or --output in use by another run.
"""
