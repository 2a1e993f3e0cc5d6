"""The command line every script reads: key=value arguments, Hydra style, so a script reads like
the training command (`scale=small runs=<dir> out=<dir>`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable


class BadArgument(ValueError):
    """A command-line value the user must fix; `entry` prints it as one sentence and exits 2."""


def parse_keys(argv: list[str], defaults: dict, passthrough: list[str] | None = None) -> dict:
    """key=value arguments over `defaults`; keys not in `defaults` go to `passthrough` when given
    (reproduce hands them to every launch), else are refused."""
    args = dict(defaults)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep:
            raise BadArgument(f"arguments are key=value; got {item!r}.")
        if key in defaults:
            args[key] = value
        elif passthrough is not None:
            passthrough.append(item)
        else:
            raise BadArgument(f"unknown argument {key!r}; expected one of {', '.join(defaults)}.")
    return args


def check_choice(key: str, value, choices: Iterable) -> None:
    choices = list(choices)
    if value not in choices:
        raise BadArgument(f"{key} must be one of {', '.join(choices)}; got {value!r}.")


def entry(main: Callable[[list[str]], int | None], argv: list[str], prog: str | None = None) -> int:
    """Run a script's `main(argv)`: a BadArgument becomes its one sentence on stderr (prefixed
    with `prog: ` when given) and exit status 2."""
    try:
        return main(argv) or 0
    except BadArgument as err:
        print(f"{prog}: {err}" if prog else str(err), file=sys.stderr)
        return 2
