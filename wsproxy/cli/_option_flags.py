"""The command's flags for the middleware's options, derived from wsproxy/_option_table.py.

Each option with a `Flag` becomes one argparse argument whose `dest` is the option's name (and one
more for its negation); `options_from_args` reads them back into the middleware's keywords, and
`import_objects` turns the MODULE:ATTR texts into the objects. An option the table gives no flag is
not read here: the command sets `metrics` and `access_log` from its operations flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from uvicorn.importer import import_from_string

from wsproxy._option_table import OPTIONS, Flag, Option


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# argparse names the type in "invalid <type> value" errors.
positive_int.__name__ = "positive integer"
positive_float.__name__ = "positive number"

# Every number the middleware takes is a positive count, size or duration.
_PARSERS: dict[str, Callable[[str], Any]] = {"int": positive_int, "float": positive_float}


def _parser_of(option: Option) -> Callable[[str], Any]:
    return _PARSERS.get(option.type.removesuffix(" | None"), str)


def flag_help(option: Option, flag: Flag) -> str:
    """--help's line: the flag's words (or the option's), then its default."""
    text = (flag.help or option.help).replace("`", "")  # the table's help is Markdown
    if flag.repeat and not option.default_words:
        return text  # its words name the default list
    if option.default is not None and option.default != "":
        return f"{text} (default: %(default)s)"
    if option.default_words:
        return f"{text} (default: {option.default_words})"
    return text


def negation_dest(flag: Flag) -> str:
    assert flag.negation is not None
    return flag.negation.removeprefix("--").replace("-", "_")


def add_option_flags(group: argparse._ArgumentGroup) -> None:
    for option in OPTIONS:
        flag = option.flag
        if flag is None:
            continue
        if flag.repeat:
            group.add_argument(
                flag.name,
                dest=option.name,
                action="append",
                metavar=flag.metavar,
                help=flag_help(option, flag),
            )
        else:
            group.add_argument(
                flag.name,
                dest=option.name,
                type=_parser_of(option),
                default=option.default,
                metavar=flag.metavar,
                help=flag_help(option, flag),
            )
        if flag.negation is not None:
            group.add_argument(
                flag.negation, dest=negation_dest(flag), action="store_true", help=flag.negation_help
            )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The middleware's keywords the flags give, JSON-serializable (MODULE:ATTR stays a text)."""
    options: dict[str, Any] = {}
    for option in OPTIONS:
        flag = option.flag
        if flag is None:
            continue
        value = getattr(args, option.name)
        if flag.repeat and value is None:
            value = option.default  # not given: the option's default, not an empty list
        if flag.negation is not None and getattr(args, negation_dest(flag)):
            value = None
        options[option.name] = list(value) if isinstance(value, tuple) else value
    return options


def import_objects(options: dict[str, Any]) -> dict[str, Any]:
    """The keywords with each MODULE:ATTR text imported. Raises ImportFromStringError."""
    imported = dict(options)
    for option in OPTIONS:
        if option.flag is not None and option.flag.imports and imported.get(option.name) is not None:
            imported[option.name] = import_from_string(imported[option.name])
    return imported
