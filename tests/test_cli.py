"""One console command (`speaker-datasets`, speaker_datasets.cli) and the conventions every command's flags
follow (pipelines.arguments): no abbreviations, defaults and an example in every --help, old spellings kept
working as hidden aliases of the canonical flag."""
from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import __version__, arguments
from speaker_datasets import cli

REPO = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}

# module with build_parser() -> the smallest argv it parses (its required arguments)
PARSERS = {
    "pipelines.build_dataset": ["--manifest", "m.jsonl", "--output", "o"],
    "pipelines.preprocess": ["--dataset", "d"],
    "trainer.task": ["--dataset", "d", "--job-dir", "j"],
    "trainer.predict": ["--export", "e", "a.wav"],
    "trainer.embed": ["--export", "e", "a.wav"],
    "trainer.enroll": ["--export", "e", "--gallery", "g.json", "--speaker", "s", "a.wav"],
    "trainer.verify": ["--export", "e", "a.wav", "b.wav"],
    "scrapers.librivox.__main__": ["--output", "o"],
    "scrapers.youtube.__main__": ["--output", "o", "--search", "q"],
    "scrapers.librivox.localsite": [],
    "benchmarks.builder": [],
    "benchmarks.open_set": ["--export", "e", "--dataset", "d"],
    "benchmarks.trainer_input": [],
    "benchmarks.audit": ["--export", "e", "--speech", "s"],
    "benchmarks.audit_quality": [],
    "benchmarks.audit_cost": ["--export", "e", "--speech", "s"],
    "demos.end_to_end": [],
    "demos.corpus": ["--output", "o"],
    "demos.librivox": ["o"],
}
# old spellings that README command lines, demos and scripts must no longer use
OLD = re.compile(r"(trainer\.(predict|embed|enroll|verify)|benchmarks\.open_set)\b.*--model\b|--data-dir\b"
                 r"|scrapers\.(librivox|youtube)\b.*--out\b|--max-retries\b|--(max|min)-seconds-per-reader\b"
                 r"|trainer\.task\b.*--model\b")


def parser_of(module: str):
    return importlib.import_module(module).build_parser()


def own_actions(parser):
    """The parser's actions without Beam's option groups (the builder and preprocess add them after ours)."""
    beam = {id(a) for g in parser._action_groups if (g.title or "").startswith("Beam ") for a in g._group_actions}
    return [a for a in parser._actions if id(a) not in beam]


def test_every_command_of_the_console_command_has_a_parser_here():
    assert {module for module, _ in cli.COMMANDS.values()} <= set(PARSERS)


@pytest.mark.parametrize("module", sorted(PARSERS))
def test_abbreviated_flags_are_refused(module):
    parser = parser_of(module)
    assert parser.allow_abbrev is False
    base = PARSERS[module]
    parser.parse_args(base)  # the base argv is complete
    for action in own_actions(parser):
        for option in action.option_strings:
            cut = option[:-1]
            if not option.startswith("--") or len(cut) < 4 or cut in parser._option_string_actions:
                continue
            _, extra = parser.parse_known_args(base + [cut])
            assert extra == [cut], f"{module} took {cut} for {option}"


@pytest.mark.parametrize("module", sorted(PARSERS))
def test_every_help_has_an_example_and_shows_the_defaults(module):
    parser = parser_of(module)
    assert parser.formatter_class is arguments.HelpFormatter
    command = "python -m " + module.replace(".__main__", "")
    assert re.search(rf"^\s+{re.escape(command)}\b", parser.epilog or "", re.M), f"{module}: no example in --help"
    assert command in parser.format_help()
    formatter = parser._get_formatter()
    for action in own_actions(parser):
        if action.option_strings and action.default not in (None, False, [], "==SUPPRESS=="):
            assert "default" in formatter._get_help_string(action).lower(), (module, action.option_strings)


@pytest.mark.parametrize("module", sorted(PARSERS))
def test_old_spellings_are_hidden_aliases_of_the_canonical_flag(module):
    parser = parser_of(module)
    shown = parser.format_help()
    base = PARSERS[module]
    for canonical, alias, dest in arguments.aliases_of(parser):
        assert parser._option_string_actions[alias].dest == parser._option_string_actions[canonical].dest == dest
        assert not re.search(rf"{re.escape(alias)}(?![\w-])", shown), f"{module} --help shows {alias}"
        assert re.search(rf"{re.escape(canonical)}(?![\w-])", shown)
        action = parser._option_string_actions[canonical]
        value = str(sorted(action.choices)[-1]) if action.choices else "7"
        if canonical in base:
            i = base.index(canonical)
            with_canonical, with_alias = base, base[:i] + [alias] + base[i + 1:]
            value = base[i + 1]
        else:
            with_canonical, with_alias = base + [canonical, value], base + [alias, value]
        assert vars(parser.parse_args(with_alias)) == vars(parser.parse_args(with_canonical))
        assert str(getattr(parser.parse_args(with_alias), dest)) in (value, str(float(value)) if value == "7" else value)


def test_a_missing_required_flag_is_named_by_its_canonical_name(capsys):
    with pytest.raises(SystemExit):
        parser_of("trainer.predict").parse_args(["a.wav"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith("the following arguments are required: --export") and "--model" not in err


def test_the_canonical_names():
    """One name per concept: --output where a command writes, --dataset for a built dataset it reads,
    --export for an export it runs, --architecture for what trainer.task builds, --retries, *-per-speaker."""
    options = {m: set(parser_of(m)._option_string_actions) for m in PARSERS}
    for module in ("trainer.predict", "trainer.embed", "trainer.enroll", "trainer.verify", "benchmarks.open_set"):
        assert "--export" in options[module]
    assert {"--dataset", "--architecture", "--job-dir"} <= options["trainer.task"]
    for module in ("scrapers.librivox.__main__", "scrapers.youtube.__main__", "pipelines.build_dataset"):
        assert "--output" in options[module]
    assert {"--retries", "--max-seconds-per-speaker", "--min-seconds-per-speaker"} <= \
        options["scrapers.librivox.__main__"]
    assert {"--retries", "--max-seconds-per-speaker"} <= options["scrapers.youtube.__main__"]
    from trainer import export, predict, task
    from trainer.model import EMBEDDERS, MODELS

    # the names these commands know without importing TensorFlow are TensorFlow's modules' names
    assert set(task.ARCHITECTURES) == set(MODELS) | set(EMBEDDERS)
    assert predict.EXPORT_JSON == export.MODEL_JSON


@pytest.mark.parametrize("module, argv", [
    ("pipelines.build_dataset", ["--manifest", "m.jsonl", "--output", "o", "--segment-second", "2"]),
    ("pipelines.preprocess", ["--datase", "d"]),
])
def test_beam_jobs_refuse_abbreviations_on_the_path_they_run(module, argv, capsys):
    """The builder and preprocess parse with Beam's PipelineOptions too: the abbreviation is refused first."""
    job = importlib.import_module(module)
    with pytest.raises(SystemExit) as exc:
        job.parse_args(argv)
    assert exc.value.code == 2 and f"unrecognized arguments: {' '.join(argv[-2:])}" in capsys.readouterr().err


def test_readme_demos_and_scripts_use_the_canonical_flags():
    files = [REPO / "README.md", *sorted((REPO / "demos").glob("*.py")), *sorted((REPO / "scripts").glob("*")),
             *sorted((REPO / "benchmarks").glob("*.py")), REPO / "benchmarks" / "README.md"]
    def text(path):  # the README's list of the old spellings (One command) names them on purpose
        return re.sub(r"The old spellings \(.*?\) still work", lambda m: "\n" * m.group(0).count("\n"),
                      path.read_text(errors="replace"), flags=re.S)

    bad = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in files if path.is_file()
           for n, line in enumerate(text(path).splitlines(), 1)
           if OLD.search(line) and "arguments.flag(" not in line]
    assert not bad, "\n".join(bad)


def test_the_top_help_lists_every_command_and_imports_nothing_heavy():
    code = ("import json, sys\nfrom speaker_datasets.cli import main\nmain(['--help'])\n"
            "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=ENV,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    *text, loaded = proc.stdout.strip().splitlines()
    assert not set(json.loads(loaded)) & {"tensorflow", "apache_beam", "trainer", "scrapers", "numpy"}
    for name in ("build", "preprocess", "train", "predict", "embed", "enroll", "verify", "scrape librivox",
                 "scrape youtube", "bench builder"):
        assert any(line.strip().startswith(name + " ") for line in text), name


def test_version_is_the_one_setup_py_reads():
    proc = subprocess.run([sys.executable, "-m", "speaker_datasets", "--version"], cwd=REPO, capture_output=True,
                          text=True, env=ENV, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"speaker-datasets {__version__}"
    setup_py = (REPO / "setup.py").read_text()
    assert 'version=_version()' in setup_py and '"0.' not in setup_py.split("setup(", 1)[1].split("version=")[1][:20]
    assert "speaker-datasets=speaker_datasets.cli:main" in setup_py and '"speaker_datasets"' in setup_py


@pytest.mark.parametrize("argv, module", [(["build", "--help"], "pipelines.build_dataset"),
                                          (["train", "--help"], "trainer.task"),
                                          (["embed", "--help"], "trainer.embed"),
                                          (["scrape", "youtube", "--help"], "scrapers.youtube.__main__"),
                                          (["bench", "open-set", "--help"], "benchmarks.open_set")])
def test_a_subcommand_is_the_modules_own_command_under_its_own_name(argv, module, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    out = capsys.readouterr().out
    name = " ".join(argv[:-1])
    assert exc.value.code == 0 and out.startswith(f"usage: speaker-datasets {name} ")
    assert parser_of(module).description in out  # the module's own help
    assert parser_of(module).prog.startswith("python -m ")  # run as a module again: its python -m name


def test_a_subcommands_errors_carry_its_name(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["predict", "--export", "e"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and err[-1].startswith("speaker-datasets predict: error: ")


@pytest.mark.parametrize("argv, message", [(["biuld"], "unknown command 'biuld'; did you mean 'build'?"),
                                           (["scrape"], "scrape needs one of: librivox, youtube"),
                                           (["scrape", "vimeo"], "unknown command 'scrape vimeo'"),
                                           (["--bogus"], "unknown option --bogus")])
def test_a_wrong_command_is_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0]


def test_a_subcommand_gets_its_arguments_unchanged(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["scrape", "librivox", "--output", "o", "--max-retr", "1"])
    assert exc.value.code == 2 and "unrecognized arguments: --max-retr 1" in capsys.readouterr().err
