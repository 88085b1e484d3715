"""YouTube scraper: one speaker's Creative-Commons videos from a channel, playlist, search or URL list.

    python -m scrapers.youtube --output data/yt --channel https://www.youtube.com/@SomeLecturer --dry-run
    python -m scrapers.youtube --output data/yt --playlist 'https://www.youtube.com/playlist?list=PL...' --max-videos 50
    python -m scrapers.youtube --output data/yt --urls videos.txt        # '# speaker: NAME' lines label the URLs after them

Lists with headless Chromium (scrolling; or --lister ytdlp), reads each candidate's metadata with yt-dlp,
keeps videos YouTube marks Creative Commons (--license any to keep all, recorded), downloads best audio with
yt-dlp, and writes OUT/audio/<channelId>/<videoId>.<ext>, OUT/manifest.jsonl (pipelines.manifest),
OUT/rejected.jsonl, OUT/download-archive.txt and OUT/scrape.json; reruns skip what is done.
Every request is bounded (--timeout, --min-rate, --max-page-mb, --max-file-mb) and on the allow-list, yt-dlp's
redirects included; one run per --output at a time (OUT/.lock).
Exit status: 0 done, 1 the source could not be listed, 2 bad arguments or --output in use by another run,
3 stopped early by YouTube (429 / bot check / a Retry-After longer than --max-retry-after).
"""
