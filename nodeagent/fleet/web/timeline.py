"""The drift timeline's geometry: one lane per node, one mark per drift at the time it was seen, coloured by what
became of it. Computed here, drawn as SVG by ``templates/timeline.html`` (no JavaScript, no plotting library)."""

from __future__ import annotations

import collections
import datetime
from dataclasses import dataclass
from typing import Iterable

from nodeagent.fleet.inventory import DriftRecord

# What became of a drift (wire.messages.DriftEvent.state) -> its colour; colour-blind safe (Okabe-Ito).
COLOURS = {"corrected": "#009E73", "left": "#E69F00", "contested": "#D55E00", "failed": "#CC79A7"}
LABEL_WIDTH = 170  # px of the lane names
WIDTH = 960
LANE_HEIGHT = 22
AXIS_HEIGHT = 28
TICKS = 6


@dataclass(frozen=True)
class Mark:
    """One drift: where it is drawn, its colour, and what its tooltip says."""

    x: float
    y: float
    end_x: float | None  # where it was fixed or closed (a bar from seen to there), None while open
    colour: str
    title: str
    node: str


@dataclass(frozen=True)
class Lane:
    node: str
    y: float
    count: int


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class Plot:
    width: int
    height: int
    left: int
    lanes: tuple[Lane, ...]
    marks: tuple[Mark, ...]
    ticks: tuple[Tick, ...]


def plot(records: Iterable[DriftRecord], start: float, end: float) -> Plot:
    """The plot of ``records`` seen between ``start`` and ``end`` (epoch seconds)."""
    records = [r for r in records if start <= r.seen_at <= end]
    nodes = sorted({r.node for r in records})
    lane_of = {node: index for index, node in enumerate(nodes)}
    span = max(end - start, 1.0)
    inner = WIDTH - LABEL_WIDTH - 10

    def x_of(moment: float) -> float:
        return round(LABEL_WIDTH + inner * (min(max(moment, start), end) - start) / span, 1)

    def y_of(node: str) -> float:
        return AXIS_HEIGHT + LANE_HEIGHT * lane_of[node] + LANE_HEIGHT / 2

    marks = []
    for record in records:
        done = record.fixed_at or record.closed_at
        marks.append(Mark(x_of(record.seen_at), y_of(record.node), x_of(done) if done else None,
                          COLOURS.get(record.state, "#777777"),
                          f"{record.node} {record.resource} ({record.driver}) {record.state} at {_clock(record.seen_at)}"
                          + ("" if done else ", still open"), record.node))
    counts = collections.Counter(r.node for r in records)
    lanes = tuple(Lane(node, y_of(node), counts[node]) for node in nodes)
    label = _clock if span <= 86400 else _day
    ticks = tuple(Tick(x_of(start + span * i / (TICKS - 1)), label(start + span * i / (TICKS - 1)))
                  for i in range(TICKS))
    return Plot(WIDTH, AXIS_HEIGHT + LANE_HEIGHT * max(len(nodes), 1) + 6, LABEL_WIDTH, lanes, tuple(marks), ticks)


def _clock(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%H:%M:%S")


def _day(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%m-%d %H:%M")
