"""Where a plot's event labels go so that none overlaps another or another event's line (pure).

The labels sit in a strip above the plot, in lanes (rows). Each label starts at its event (its
text runs to the right of the event's x) and a leader, the event's line, runs up from the strip's
floor to the bottom of its text. Rule, applied to the labels from the rightmost event leftwards:
a label takes the lowest lane where its text (widened by ``pad``) overlaps no text already in
that lane and crosses no leader already drawn up to that lane or higher. Working leftwards, a
leader already placed lies at or right of the new label's event, so it can only be crossed by the
new text, never cross it from below: going up a lane always clears it, and a lane is always
found. Events closer than ``pad`` share one label (their lines are one line at this scale).

Everything is in display units (pixels); the caller measures each text with its renderer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Placed:
    """One label: its text, its event's x (the leader), its text's extent and its lane."""

    text: str
    x: float
    right: float
    lane: int
    members: tuple[int, ...]  # the indexes of the events it names


def merge_close(xs: Sequence[float], texts: Sequence[str], pad: float,
                joiner: str = " / ") -> list[tuple[float, str, tuple[int, ...]]]:
    """Events less than ``pad`` right of a group's first event join its label (at that x);
    the same text twice is named once."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], i))
    groups: list[tuple[float, list[str], list[int]]] = []
    for i in order:
        if groups and xs[i] - groups[-1][0] < pad:
            if texts[i] not in groups[-1][1]:
                groups[-1][1].append(texts[i])
            groups[-1][2].append(i)
        else:
            groups.append((xs[i], [texts[i]], [i]))
    return [(x, joiner.join(ts), tuple(ids)) for x, ts, ids in groups]


def place(xs: Sequence[float], texts: Sequence[str], width: Callable[[str], float],
          pad: float = 4.0) -> list[Placed]:
    """Lanes for labels at ``xs`` (see the module docstring); ``width(text)`` in pixels."""
    if pad <= 0:
        raise ValueError("pad must be positive")
    groups = merge_close(xs, texts, pad)
    placed: list[Placed] = []
    for x, text, members in sorted(groups, key=lambda g: -g[0]):
        right = x + width(text)
        # Every label placed so far starts at least ``pad`` right of x. One that starts within
        # this text (widened by pad) has its text, or its leader rising to its lane, in the way
        # in each lane up to its own: this label goes above all such.
        lane = max((p.lane + 1 for p in placed if p.x < right + pad), default=0)
        placed.append(Placed(text, x, right, lane, members))
    return sorted(placed, key=lambda p: p.x)


def lanes(placed: Sequence[Placed]) -> int:
    return 1 + max((p.lane for p in placed), default=-1)
