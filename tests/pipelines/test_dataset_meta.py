"""pipelines.dataset_meta: dataset.json read and written through one type."""
from __future__ import annotations

import json

import pytest

from pipelines import schema
from pipelines.dataset_meta import DatasetError, DatasetMeta


@pytest.mark.slow
def test_reads_back_exactly_what_the_builder_wrote(small_dataset):
    out, meta = small_dataset
    on_disk = json.loads((out / schema.DATASET_JSON).read_text())
    read = DatasetMeta.read(str(out))
    assert read == meta and read.to_json() == on_disk
    assert read.features == ("audio", "fft", "log_mel") and read.feature_shapes()["log_mel"] == (98, 64)
    assert read.files(str(out), "train") == [str(out / f) for f in on_disk["splits"]["train"]["files"]]
    assert read.examples("train") == on_disk["splits"]["train"]["examples"] > 0
    assert read.counts.add_up and read.split_audit.holds and not read.gzip


@pytest.mark.parametrize("content, message", [
    (None, "holds no dataset.json"),
    ("{not json", "not JSON"),
    ("[]", "not a JSON object"),
    ('{"config": {}}', "unreadable dataset.json"),
])
def test_a_folder_that_is_not_a_dataset_is_one_clear_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / schema.DATASET_JSON).write_text(content)
    with pytest.raises(DatasetError, match=message):
        DatasetMeta.read(str(tmp_path))
