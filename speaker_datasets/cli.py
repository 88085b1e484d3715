"""One console command, `speaker-datasets <command> ...`, for every command of the project.

Each subcommand hands its arguments, unchanged, to the `main(argv)` of the module that `python -m`
runs, imported only when chosen: `speaker-datasets build --help` is the builder's own help, and
`speaker-datasets --help` imports neither TensorFlow nor Beam. `python -m speaker_datasets` works too.
"""
from __future__ import annotations

import difflib
import importlib
import sys
from typing import List, Optional, Sequence

PROG = "speaker-datasets"
# command words -> (module whose main(argv) runs it, one line for the overview)
COMMANDS = {
    "build": ("pipelines.build_dataset", "audio + manifest (or a <speaker>/<files> folder) -> TFRecord dataset (Beam)"),
    "preprocess": ("pipelines.preprocess", "tf.Transform statistics and speaker vocabulary of a dataset (Beam)"),
    "train": ("trainer.task", "train a closed-set classifier or an open-set embedder; evaluate; export"),
    "predict": ("trainer.predict", "name the speaker of audio files with an export"),
    "embed": ("trainer.embed", "one speaker embedding per audio file"),
    "enroll": ("trainer.enroll", "add a speaker's files to a gallery"),
    "verify": ("trainer.verify", "same speaker or not: two files, or a file against an enrolled speaker"),
    "scrape librivox": ("scrapers.librivox.__main__", "LibriVox solo readers -> audio + manifest.jsonl"),
    "scrape youtube": ("scrapers.youtube.__main__", "Creative Commons YouTube videos -> audio + manifest.jsonl"),
    "bench builder": ("benchmarks.builder", "builder throughput, memory and storage (slow)"),
    "bench trainer-input": ("benchmarks.trainer_input", "tf.data input pipeline of the trainer"),
    "bench open-set": ("benchmarks.open_set", "open-set identification and verification of an export"),
    "bench audit": ("benchmarks.audit", "the acoustic audit's speaker checks on labelled real speech"),
    "bench audit-quality": ("benchmarks.audit_quality", "the audit's quality gates on clean and degraded speech"),
    "bench audit-cost": ("benchmarks.audit_cost", "what the audit adds to the builder's CPU per audio second"),
}
GROUPS = ("scrape", "bench")  # commands that take a second word


def version() -> str:
    """The package version: pipelines.__version__, which setup.py reads too."""
    from pipelines import __version__

    return __version__


def overview() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"usage: {PROG} [-h] [--version] COMMAND [ARGS ...]", "",
             "Speaker-recognition datasets: scrape, build, preprocess, train, and use the model.", "",
             "commands (each takes --help):"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "options:", "  -h, --help  show this help and exit", "  --version   print the version and exit", "",
              "example:",
              f"  {PROG} build --audio-dir corpus/ --output data/ds",
              f"  {PROG} train --dataset data/ds --job-dir runs/r1",
              f"  {PROG} predict --export runs/r1/export clip.mp3",
              "Every command also runs as python -m <module> (e.g. python -m pipelines.build_dataset)."]
    return "\n".join(lines)


def resolve(argv: List[str]) -> tuple:
    """(command name, its arguments) from argv; SystemExit(2) with a one-line error for an unknown command."""
    name, rest = argv[0], argv[1:]
    if name in GROUPS:
        choices = [c.split(" ", 1)[1] for c in COMMANDS if c.startswith(name + " ")]
        if not rest or rest[0].startswith("-"):
            fail(f"{name} needs one of: {', '.join(choices)} (e.g. {PROG} {name} {choices[0]} --help)")
        name, rest = f"{name} {rest[0]}", rest[1:]
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, list(COMMANDS) + list(GROUPS), n=1)
        fail(f"unknown command {name!r}" + (f"; did you mean {close[0]!r}?" if close else "")
             + f" (see {PROG} --help)")
    return name, rest


def fail(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(overview(), file=sys.stderr)
        return 2
    if argv[0] in ("-h", "--help"):
        print(overview())
        return 0
    if argv[0] == "--version":
        print(f"{PROG} {version()}")
        return 0
    if argv[0].startswith("-"):
        fail(f"unknown option {argv[0]} before the command (see {PROG} --help)")
    name, rest = resolve(argv)
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "benchmarks":
            fail(f"{name}: the benchmarks run from a source checkout of the project, not an installed package")
        raise
    from pipelines.arguments import invoked_as

    with invoked_as(f"{PROG} {name}"):
        return module.main(rest) or 0
