"""Scrapers that harvest solo-narrator audio and write a manifest for the dataset builder: LibriVox and YouTube.

Each writes OUT/audio/…, OUT/manifest.jsonl (one pipelines.manifest `ManifestRecord` per recording: the
contract the builder reads; ARCHITECTURE.md, "Contracts"), OUT/rejected.jsonl and OUT/scrape.json.

    scrapers/cli.py          argparse types and checks shared by the CLIs; finish_config (logging: pipelines.logs)
    scrapers/output.py       what a scrape leaves in OUT: scrape.json identity (ScrapeConfig), Reject records
    scrapers/jsonl.py        append-only, kill-safe JSON Lines files (manifest, rejections, API pages)
    scrapers/http.py         the polite HTTP session (allow-list, robots.txt, rate limit, retries, resumed downloads)
    scrapers/browser.py      headless Chromium for the JavaScript pages
    scrapers/localserver.py  what the local fake sites of the tests and the demo share
    scrapers/librivox/       python -m scrapers.librivox (api, pages, paging, selection, scrape, localsite)
    scrapers/youtube/        python -m scrapers.youtube (pages, lister, download, scrape)
"""
