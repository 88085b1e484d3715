"""The command-line conventions every command shares (builder, preprocess, trainer, scrapers, benchmarks).

- `command_parser(prog, doc)`: the docstring's first paragraph as the description, the rest (its usage
  examples) as the epilog; abbreviated flags refused (`allow_abbrev=False`); defaults shown.
- `flag(parser, "--canonical", "--old-spelling", ...)`: one option with old spellings that keep working
  (scripts, demos) but are hidden from `--help`, which shows the canonical name only.
- `local_path_problem`: the cheap checks of a path argument, made before TensorFlow or Beam is imported.
- `invoked_as(prog)`: the name a command's usage and errors show while it runs as a subcommand
  (`speaker-datasets build`), instead of its `python -m` name.
No Beam, no TensorFlow: the trainer and the scrapers import this module too.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
from typing import Iterable, Optional

from pipelines.paths import is_remote


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (examples keep their lines), each option's default shown once
    (unless its help already names it, or there is none to show), old spellings of a flag hidden."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower() or action.default is None
                or action.default is argparse.SUPPRESS or isinstance(action.default, bool)
                or action.default == [] or text == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)".lstrip()

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "aliases", ())
        if hidden:
            action = copy.copy(action)
            action.option_strings = [s for s in action.option_strings if s not in hidden]
        return super()._format_action_invocation(action)


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose errors name a flag by its canonical name only ("required: --export", not
    "--export/--model")."""

    def error(self, message: str):
        for action in self._actions:
            if getattr(action, "aliases", ()):
                message = message.replace("/".join(action.option_strings), action.option_strings[0])
        super().error(message)


_invoked_as: Optional[str] = None  # set by `invoked_as` while a command runs as a subcommand


@contextlib.contextmanager
def invoked_as(prog: str):
    """Meanwhile, every `command_parser` names its command `prog` (usage lines and errors)."""
    global _invoked_as
    saved, _invoked_as = _invoked_as, prog
    try:
        yield
    finally:
        _invoked_as = saved


def prog_name(default: str) -> str:
    """The name a command's own messages show: `default` (its `python -m` name), or the subcommand's name."""
    return _invoked_as or default


def command_parser(prog: str, doc: str, **kwargs) -> argparse.ArgumentParser:
    """A command's parser: `doc`'s first paragraph as the description, the rest (usage examples) as the
    epilog; no abbreviations; HelpFormatter. `prog` is the `python -m` name, unless `invoked_as` says otherwise."""
    prog = prog_name(prog)
    parts = (doc or "").strip("\n").split("\n\n")
    kwargs.setdefault("description", parts[0])
    kwargs.setdefault("epilog", "\n\n".join(parts[1:]) or None)
    return Parser(prog=prog, formatter_class=HelpFormatter, allow_abbrev=False, **kwargs)


def flag(container, canonical: str, *aliases: str, **kwargs) -> argparse.Action:
    """`container.add_argument(canonical, *aliases, **kwargs)` with the aliases (old spellings, same dest)
    accepted but left out of --help."""
    action = container.add_argument(canonical, *aliases, **kwargs)
    action.aliases = tuple(aliases)
    return action


def aliases_of(parser: argparse.ArgumentParser) -> Iterable[tuple]:
    """(canonical option, alias, dest) of every hidden old spelling in `parser`."""
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        for alias in getattr(action, "aliases", ()):
            yield action.option_strings[0], alias, action.dest


def local_path_problem(option: str, path: str, kind: str = "folder") -> Optional[str]:
    """One line saying why a local `path` given to `option` cannot be used (missing; a file where a folder is
    wanted or the reverse), or None. Remote paths (gs://...) are checked later by the job itself."""
    if not path or is_remote(path):
        return None
    if not os.path.exists(path):
        return f"{option} {path}: no such {kind}"
    if kind == "folder" and not os.path.isdir(path):
        return f"{option} {path} is a file, not a folder"
    if kind == "file" and os.path.isdir(path):
        return f"{option} {path} is a folder, not a file"
    return None
