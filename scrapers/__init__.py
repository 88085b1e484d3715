"""Scrapers that harvest solo-narrator audio and write manifests (DESIGN.md 2.1): LibriVox and YouTube.

Not built yet: see the LibriVox (4) and YouTube (5) issues. The manifest contract they write is
defined in pipelines/schema.py and read by pipelines/manifest.py.
"""
