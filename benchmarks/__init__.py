"""Benchmarks of the builder, the trainer's input, the open set and the acoustic audit (benchmarks/README.md)."""
import json


def write_results(path, result) -> None:
    """A benchmark's figures as indented, key-sorted JSON (benchmarks/results/)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
