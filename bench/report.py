"""Medians, ratios and their spread over the rounds, as one Markdown table, then every target's verdict."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

VERDICT_ROUNDS = 7  # a target is judged on the median of at least this many rounds (issue 11)


@dataclass
class Row:
    """One measure on one event loop: its value per round for the baseline and the variant (wsproxy)."""

    key: str
    label: str
    unit: str
    target: str = ""  # e.g. ">= 0.85": on the ratio variant/baseline, or on the variant's value if absolute
    absolute: bool = False
    loop: str = ""  # the server's event loop (and HTTP parser), e.g. "uvloop+h11"
    base: list[float] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)

    def add(self, base: float, proxy: float) -> None:
        self.base.append(base)
        self.proxy.append(proxy)

    @property
    def ratios(self) -> list[float]:
        """Per round, variant / baseline: each round pairs two runs that saw the same drift."""
        return [p / b for b, p in zip(self.base, self.proxy, strict=True) if b]

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios."""
        ratios = self.ratios
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def judged(self) -> list[float]:
        """What the target is checked on, per round: the ratios, or the variant's values if absolute."""
        return self.proxy if self.absolute else self.ratios

    @property
    def spread(self) -> tuple[float, float]:
        """Lowest and highest per-round value of what the target is checked on."""
        values = self.judged
        return (min(values), max(values)) if values else (float("nan"), float("nan"))

    @property
    def measured(self) -> float:
        """What the target is checked against: the median of `judged`."""
        judged = self.judged
        return statistics.median(judged) if judged else float("nan")

    @property
    def met(self) -> str:
        if not self.target or not self.judged:
            return ""
        op, value = self.target.split()
        measured = self.measured
        ok = measured >= float(value) if op == ">=" else measured <= float(value)
        return "yes" if ok else "NO"

    @property
    def shown_target(self) -> str:
        return f"wsproxy {self.target}" if self.absolute else self.target


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: Iterable[Row]) -> str:
    """Ratio is the median of the per-round ratios; spread is their min-max (for absolute rows: the
    variant's own values, on which its target is checked). A target met or missed over fewer than
    VERDICT_ROUNDS rounds is shown in parentheses."""
    lines = [
        "| measure | loop | baseline | variant | ratio | spread | target | met | rounds |",
        "|---|---|---:|---:|---:|:-:|---:|:-:|---:|",
    ]
    for row in rows:
        if not row.base:
            continue
        base = statistics.median(row.base)
        proxy = statistics.median(row.proxy)
        low, high = row.spread
        target = row.shown_target
        met = row.met
        if met and len(row.base) < VERDICT_ROUNDS:
            met = f"({met})"  # fewer rounds than a verdict needs: an indication only
        lines.append(
            f"| {row.label} ({row.unit}) | {row.loop} | {_fmt(base)} | {_fmt(proxy)} | {row.ratio:.2f} "
            f"| {low:.2f}-{high:.2f} | {target} | {met} | {len(row.base)} |"
        )
    lines.append("")
    lines.append(
        f"ratio: median of the per-round ratios; spread: their lowest-highest; met in parentheses: "
        f"fewer than {VERDICT_ROUNDS} rounds, an indication, not a verdict."
    )
    return "\n".join(lines)


def verdicts(rows: Iterable[Row]) -> str:
    """One line per target: met or missed, the value it was judged on (the median of the per-round
    ratios, or of the variant's values for an absolute target), its spread and its rounds. With
    fewer than VERDICT_ROUNDS rounds a verdict is an indication only, and says so."""
    lines: list[str] = []
    met = missed = 0
    for row in rows:
        if not row.met:
            continue
        ok = row.met == "yes"
        met, missed = met + ok, missed + (not ok)
        low, high = row.spread
        rounds = len(row.base)
        note = "" if rounds >= VERDICT_ROUNDS else ", an indication only"
        lines.append(
            f"- {'met' if ok else 'missed'}: {row.label}, {row.loop}: {row.measured:.2f} "
            f"(spread {low:.2f}-{high:.2f}), target {row.shown_target}, {rounds} rounds{note}"
        )
    if not lines:
        return ""
    return "\n".join([f"Targets: {met} met, {missed} missed", *lines])


def interleave(results: dict[str, dict[str, Row]]) -> list[Row]:
    """Rows in registry order, each row's loops side by side: {loop: {key: Row}} -> [Row, ...]."""
    loops = list(results.values())
    keys = list(loops[0]) if loops else []
    return [loop_rows[key] for key in keys for loop_rows in loops]
