"""Every place that names the middleware's options agrees with wsproxy/_option_table.py.

The signature and the fields spell their types and defaults out for readers and type checkers;
the flags and the docs' tables are derived. One test reads them all and lists each disagreement.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

from wsproxy import WebSocketProxyMiddleware
from wsproxy._option_docs import TABLES, render
from wsproxy._option_table import BY_NAME, OPTIONS
from wsproxy._options import ProxyOptions
from wsproxy.cli import build_parser
from wsproxy.cli._option_flags import flag_help, negation_dest

ROOT = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")

# A value other than the default for each type of ProxyOptions field: each must reach the options.
SAMPLES: dict[str, Any] = {
    "str": "PATCH",
    "str | None": "sample",
    "ForwardedHeaders": ("x-sample",),
    "RequestMutator | None": lambda websocket_scope, http_scope: http_scope,
    "str | bytes | None": b"sample",
    "int": 7,
    "int | None": 7,
    "float | None": 7.5,
    "Collection[str] | None": ("https://sample.example",),
    "PassthroughPaths | None": ("/sample/",),
}


def _signature_problems() -> list[str]:
    problems = []
    parameters = inspect.signature(WebSocketProxyMiddleware.__init__).parameters
    keywords = {name: p for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    if set(keywords) != set(BY_NAME):
        problems.append(
            f"signature keywords {sorted(set(keywords) ^ set(BY_NAME))} are not both in the table"
        )
    for name, parameter in keywords.items():
        option = BY_NAME.get(name)
        if option is None:
            continue
        if parameter.annotation != option.type:
            problems.append(f"signature: {name}: {parameter.annotation}, the table: {option.type}")
        if parameter.default != option.default or type(parameter.default) is not type(option.default):
            problems.append(f"signature: {name} = {parameter.default!r}, the table: {option.default!r}")
    return problems


def _field_problems() -> list[str]:
    problems = []
    given = {}
    for field in dataclasses.fields(ProxyOptions):
        option = BY_NAME.get(field.name)
        if option is None:
            problems.append(f"ProxyOptions.{field.name} is not in the table")
            continue
        if field.type != option.type:
            problems.append(f"ProxyOptions.{field.name}: {field.type}, the table: {option.type}")
        if field.default != option.default:
            problems.append(f"ProxyOptions.{field.name} = {field.default!r}, the table: {option.default!r}")
        given[field.name] = SAMPLES[option.type]
    # The middleware passes each of its keywords on to ProxyOptions.
    received = WebSocketProxyMiddleware(_noop, **given).options
    problems += [
        f"the middleware does not pass {name} on to ProxyOptions"
        for name, value in given.items()
        if getattr(received, name) != value
    ]
    return problems


def _flag_problems(parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    for each in parser._actions:
        given = BY_NAME.get(each.dest)
        if given is not None and (given.flag is None or given.flag.name not in each.option_strings):
            problems.append(f"{each.option_strings} sets {given.name}, a flag the table does not give it")
    for option in OPTIONS:
        flag = option.flag
        if flag is None:
            continue
        action = actions.get(flag.name)
        if action is None:
            problems.append(f"{flag.name} ({option.name}) is not a flag of the command")
            continue
        if action.dest != option.name:
            problems.append(f"{flag.name} sets {action.dest}, not {option.name}")
        expected = None if flag.repeat else option.default
        if action.default != expected:
            problems.append(f"{flag.name} defaults to {action.default!r}, the table: {expected!r}")
        if action.help != flag_help(option, flag):
            problems.append(f"{flag.name}'s help is not the table's")
        if flag.negation is not None:
            negation = actions.get(flag.negation)
            if negation is None or negation.dest != negation_dest(flag):
                problems.append(f"{flag.negation} ({option.name}) is not a flag of the command")
    return problems


def _doc_problems(parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    for path, (name, rows) in TABLES.items():
        text = (ROOT / path).read_text()
        if render(text, name, rows()) != text:
            problems.append(
                f"{path}: the {name} table differs from the table; run python -m wsproxy._option_docs"
            )
    # docs/cli.md names every flag of the command, and only those.
    named = set(FLAG.findall((ROOT / "docs/cli.md").read_text()))
    flags = {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    if named - flags:
        problems.append(f"docs/cli.md names flags the command does not have: {sorted(named - flags)}")
    if flags - named - {"--help"}:
        problems.append(f"docs/cli.md does not name: {sorted(flags - named - {'--help'})}")
    return problems


async def _noop(scope: Any, receive: Any, send: Any) -> None:
    return None


def test_the_signature_the_fields_the_flags_and_the_docs_agree_with_the_options_table() -> None:
    parser = build_parser()
    problems = _signature_problems() + _field_problems() + _flag_problems(parser) + _doc_problems(parser)
    assert problems == []
