"""Local and remote paths are joined the way Beam's FileSystems and tf.io.gfile expect."""
import os

from pipelines.paths import is_remote, join


def test_local_paths_use_os_path_join(tmp_path):
    assert join(str(tmp_path), "a", "b.json") == os.path.join(str(tmp_path), "a", "b.json")
    assert not is_remote(str(tmp_path))


def test_remote_paths_are_slash_joined_without_doubled_slashes():
    assert join("gs://bucket/ds/", "errors", "decode.jsonl") == "gs://bucket/ds/errors/decode.jsonl"
    assert join("gs://bucket/ds", "/report/", "a.png") == "gs://bucket/ds/report/a.png"
    assert is_remote("gs://bucket") and is_remote("s3://b/k")
