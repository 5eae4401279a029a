"""Medians and ratios of the rounds, as one Markdown table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass
class Row:
    """One measure: its value per round for the baseline and for the proxy, and the paired ratios."""

    key: str
    label: str
    unit: str
    target: str = ""  # e.g. ">= 0.85": on the ratio proxy/baseline, or on the proxy's value if absolute
    absolute: bool = False
    base: list[float] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)

    def add(self, base: float, proxy: float) -> None:
        self.base.append(base)
        self.proxy.append(proxy)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios: each round pairs two runs that saw the same drift."""
        ratios = [p / b for b, p in zip(self.base, self.proxy, strict=True) if b]
        return statistics.median(ratios) if ratios else float("nan")

    @property
    def met(self) -> str:
        if not self.target or not self.base:
            return ""
        op, value = self.target.split()
        measured = statistics.median(self.proxy) if self.absolute else self.ratio
        ok = measured >= float(value) if op == ">=" else measured <= float(value)
        return "yes" if ok else "NO"


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    lines = [
        "| measure | baseline | wsproxy | ratio | target | met | rounds |",
        "|---|---:|---:|---:|---:|:-:|---:|",
    ]
    for row in rows:
        if not row.base:
            continue
        base = statistics.median(row.base)
        proxy = statistics.median(row.proxy)
        target = f"wsproxy {row.target}" if row.absolute else row.target
        lines.append(
            f"| {row.label} ({row.unit}) | {_fmt(base)} | {_fmt(proxy)} | {row.ratio:.2f} "
            f"| {target} | {row.met} | {len(row.base)} |"
        )
    return "\n".join(lines)
