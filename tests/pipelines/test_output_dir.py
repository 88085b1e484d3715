"""pipelines.output_dir: the card's common file names (README.md, sources.tsv, manifest.jsonl) are the builder's
only in a folder a build wrote; a user's README.md alone is never cleared."""
from __future__ import annotations

import pytest

from pipelines import schema
from pipelines.config import BuildConfig
from pipelines.output_dir import OutputError, check_output, remove_owned

CONFIG = BuildConfig(manifest="/elsewhere/manifest.jsonl")
CARD_FILES = (schema.CARD_MD, schema.SOURCES_TSV, schema.MANIFEST_JSONL)


@pytest.mark.parametrize("name", CARD_FILES)
def test_a_users_readme_or_manifest_alone_is_foreign(tmp_path, name):
    (tmp_path / name).write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match=f"did not write \\({name}\\)"):
            check_output(str(tmp_path), CONFIG, overwrite)
    remove_owned(str(tmp_path), CONFIG)
    assert (tmp_path / name).read_text() == "mine"


def test_the_card_beside_a_builds_dataset_json_is_the_builders(tmp_path):
    for name in CARD_FILES + (schema.DATASET_JSON,):
        (tmp_path / name).write_text("{}")
    (tmp_path / "transform").mkdir()
    check_output(str(tmp_path), CONFIG, overwrite=True)  # nothing foreign
    remove_owned(str(tmp_path), CONFIG)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transform"]


def test_the_derived_manifest_of_audio_dir_stays_owned(tmp_path):
    (tmp_path / schema.MANIFEST_JSONL).write_text("")
    check_output(str(tmp_path), BuildConfig(audio_dir="/elsewhere/audio"), overwrite=True)
