"""The README demo's LibriVox step (demos/librivox.py): local site → scraper CLI → manifest → dataset, offline."""
from __future__ import annotations


import pytest
import yaml  # PyYAML (Beam's dependency): the dataset card's header

from scrapers.librivox.localsite import BOOKS


@pytest.mark.slow
def test_demo_scrapes_the_local_site_and_builds_a_dataset_of_its_readers(tmp_path):
    from demos import librivox as demo  # here, so a broken demos package fails this test, not the collection

    result = demo.run_demo(str(tmp_path / "lv"), ["--features", "audio"])
    ds = tmp_path / "lv" / "dataset"
    rows = [r.split("\t") for r in (ds / "speakers.tsv").read_text().splitlines()[1:]]
    # the readers the site served with audio, read alone, on a book page with a chapter table
    served = {f"librivox:{readers[0][0]}" for bid, b in BOOKS.items() if bid != "103"
              for _, readers, audio, _ in b["sections"] if audio and len(readers) == 1 and readers[0][0].isdigit()}
    assert {r[0] for r in rows} == served == {"librivox:501", "librivox:502", "librivox:503", "librivox:504"}
    meta = result["dataset"]
    c = meta.counts
    assert c.add_up and c.inputs == result["summary"]["chapters_kept"] == 8
    assert c.inputs == c.recordings_with_segments + c.rejected and c.rejected == 0
    assert sum(meta.split(s).recordings for s in ("train", "validation", "test")) == c.recordings_with_segments
    assert all(not e.read_text().strip() for e in (ds / "errors").glob("*.jsonl"))
    assert "LibriVox demo: 4 readers, 8 chapters" in demo.summary_text(result)
    # the dataset card: LibriVox's public domain outside the Hub's licence list, named and linked
    header = yaml.safe_load((ds / "README.md").read_text().split("---\n")[1])
    assert (header["license"], header["license_name"], header["language"]) == ("other", "public-domain", ["en"])
    sources = [r.split("\t") for r in (ds / "sources.tsv").read_text().splitlines()[1:]]
    assert len(sources) == 8 and {r[0] for r in sources} == served
    assert all(r[-1].endswith(", public-domain") and " Reader, http://" in r[-1] for r in sources)
