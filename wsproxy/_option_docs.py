"""The option tables of docs/options.md and docs/cli.md, written from wsproxy/_option_table.py.

`python -m wsproxy._option_docs` (from the repository's root) rewrites each table between its
BEGIN and END comments; tests/unit/test_option_table.py fails while a doc differs from `render`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wsproxy._option_table import OPTIONS, Option

BEGIN = (
    "<!-- BEGIN {name} table: `python -m wsproxy._option_docs` writes it from wsproxy/_option_table.py -->"
)
END = "<!-- END {name} table -->"


def _python(value: Any) -> str:
    """A default as Python source, strings in double quotes as the docs write them."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_python(item) for item in value) + ")"
    return repr(value)


def _sentence(*parts: str) -> str:
    """Clauses joined by "; ", or by ". " before one that starts a sentence."""
    text = ""
    for part in filter(None, parts):
        text += (". " if part[0].isupper() else "; ") + part if text else part
    return text


def _flag_cell(option: Option) -> str:
    flag = option.flag
    if flag is None:
        return f"none ({option.no_flag})"
    cell = f"`{flag.name} {flag.metavar}`" + (" (repeat)" if flag.repeat else "")
    return cell + (f" / `{flag.negation}`" if flag.negation else "")


def options_rows() -> list[str]:
    rows = [
        "| option | default | what it does | `wsproxy` flag | Go (tmc/grpc-websocket-proxy) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for option in OPTIONS:
        default = f"`{_python(option.default)}`"
        if option.default_words:
            default += f" ({option.default_words})"
        what = _sentence(option.help, option.doc)
        rows.append(f"| `{option.name}` | {default} | {what} | {_flag_cell(option)} | {option.go} |")
    return rows


def cli_rows() -> list[str]:
    rows = ["| Flag | Default | Middleware option |", "|---|---|---|"]
    for option in OPTIONS:
        flag = option.flag
        if flag is None:
            continue
        if isinstance(option.default, tuple):
            default = ", ".join(f"`{item}`" for item in option.default)
        elif option.default is not None and option.default != "":
            default = f"`{option.default}`"
        else:
            default = option.default_words
        negation = f"`None` with `{flag.negation}`" if flag.negation else ""
        what = _sentence(flag.help or option.help, negation)
        rows.append(f"| {_flag_cell(option)} | {default} | `{option.name}`: {what} |")
    return rows


TABLES = {"docs/options.md": ("options", options_rows), "docs/cli.md": ("flags", cli_rows)}


def render(text: str, name: str, rows: list[str]) -> str:
    """`text` with its table `name` replaced by `rows`. Raises ValueError if the comments are missing."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    start = text.index(begin) + len(begin)
    stop = text.index(end, start)
    return text[:start] + "\n" + "\n".join(rows) + "\n" + text[stop:]


def main(root: Path) -> None:
    for path, (name, rows) in TABLES.items():
        doc = root / path
        doc.write_text(render(doc.read_text(), name, rows()))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
