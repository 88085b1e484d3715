"""LibriVox scraper: solo-read chapters found through the API, book pages and the JS catalogue search.

    python -m scrapers.librivox --out data/librivox --language English --max-readers 20 --dry-run
    python -m scrapers.librivox --out data/librivox --search --language English --max-readers 20

Writes OUT/audio/<reader>/<book>-<section>.mp3, OUT/manifest.jsonl (DESIGN.md 2.1), OUT/rejected.jsonl
and OUT/scrape.json; reruns skip what is done.
"""
