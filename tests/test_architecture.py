"""The layering of ARCHITECTURE.md, checked: imports point down, no private names cross modules.

scrapers -> manifest contract <- pipelines -> features <- trainer; demos, benchmarks and the console command
(speaker_datasets) above all.
Training never imports Apache Beam; nothing in pipelines imports the trainer.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipelines", "trainer", "scrapers", "demos", "benchmarks", "speaker_datasets")


def modules_loaded_by(*modules: str) -> set:
    """Top-level package names in sys.modules after importing `modules` in a fresh interpreter."""
    code = (f"import importlib, json, sys\nfor m in {list(modules)!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def source_files(*packages: str):
    for package in packages:
        yield from sorted((REPO / package).rglob("*.py"))


def imported_modules(path: Path):
    """(module name, node) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, node


@pytest.mark.slow
def test_training_and_prediction_never_import_beam():
    loaded = modules_loaded_by("trainer.task", "trainer.predict", "trainer.data", "trainer.export",
                               "trainer.evaluate", "pipelines.transform_output", "pipelines.dataset_meta")
    assert "apache_beam" not in loaded
    assert "tensorflow_transform" in loaded or "tensorflow" in loaded  # the check imported something real


def test_contract_modules_import_neither_beam_nor_tensorflow():
    loaded = modules_loaded_by("pipelines.manifest", "pipelines.config", "pipelines.dataset_meta",
                               "pipelines.schema", "pipelines.decode", "pipelines.silence", "pipelines.segments",
                               "pipelines.audio_folder", "pipelines.planning", "scrapers.jsonl",
                               "scrapers.output", "scrapers.librivox.selection")
    assert not loaded & {"apache_beam", "tensorflow", "trainer"}


def test_the_console_command_imports_only_what_it_runs():
    """`speaker-datasets --help` costs no TensorFlow, Beam or command module: each is imported when chosen."""
    loaded = modules_loaded_by("speaker_datasets.cli", "speaker_datasets")
    assert not loaded & {"apache_beam", "tensorflow", "trainer", "scrapers", "demos", "benchmarks", "numpy"}


@pytest.mark.parametrize("package, forbidden", [
    ("pipelines", ("trainer", "scrapers", "demos", "benchmarks", "speaker_datasets")),
    ("speaker_datasets", ("apache_beam", "tensorflow", "trainer", "scrapers", "demos", "benchmarks")),
    ("trainer", ("scrapers", "demos", "benchmarks", "speaker_datasets", "apache_beam", "pipelines.preprocess", "pipelines.build_dataset",
                 "pipelines.transforms", "pipelines.finalize", "pipelines.options", "pipelines.output_dir")),
    ("scrapers", ("trainer", "demos", "benchmarks", "speaker_datasets", "apache_beam", "pipelines.build_dataset", "pipelines.transforms")),
])
def test_imports_point_down_the_layers(package, forbidden):
    bad = [f"{path.relative_to(REPO)}:{node.lineno} imports {name}"
           for path in source_files(package) for name, node in imported_modules(path)
           if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_no_module_uses_another_modules_private_names():
    ours = set(PACKAGES)
    bad = []
    for path in source_files(*PACKAGES):
        tree = ast.parse(path.read_text(), str(path))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours:
                bad += [f"{path.relative_to(REPO)}:{node.lineno} from {node.module} import {a.name}"
                        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                aliases.update({(a.asname or a.name): node.module for a in node.names})
            elif isinstance(node, ast.Import):
                aliases.update({(a.asname or a.name.split(".")[0]): a.name for a in node.names
                                if a.name.split(".")[0] in ours})
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_help_texts_and_docstrings_refer_to_documents_in_the_repository():
    assert (REPO / "ARCHITECTURE.md").is_file()
    bad = [f"{path.relative_to(REPO)}" for path in source_files(*PACKAGES, "tests")
           if "DESIGN.md" in path.read_text() and path.name != "test_architecture.py"]
    assert not bad, bad
