"""Many virtual patients at once, stepped with the exact solver, and their adverse episodes.

The patient model (``openitb.physiology``) is linear in its states, so each step of a fixed
length is ``x <- Phi x + Gamma u`` with matrices computed once per step length for the whole
population. The input over a step is what the pumps delivered in it, spread evenly: intrathecal
(at the catheter tip) and into tissue (pocket fills, disconnected catheters).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from openitb.physiology.model import (
    CSF,
    DEPOT,
    INTRATHECAL,
    N_INPUTS,
    SUBCUTANEOUS,
    build_system,
    readouts,
    severities,
    steady_state,
)
from openitb.physiology.params import Definitions, Patients, catalog
from openitb.physiology.solver import ExactSolver

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
# One block's step: Phi, the input columns of Gamma, and the cross terms from other blocks.
Step = tuple[FloatArray, tuple[FloatArray | None, ...], tuple[tuple[int, FloatArray], ...]]


def concat(parts: list[Patients]) -> Patients:
    """One set of patients from several (e.g. one population per named base patient)."""
    if len(parts) == 1:
        return parts[0]
    keys = parts[0].values.keys()
    return Patients(
        {k: np.concatenate([p.values[k] for p in parts]) for k in keys},
        np.concatenate([p.tip_cm for p in parts]), np.concatenate([p.target_cm for p in parts]),
        np.concatenate([p.lumbar_cm for p in parts]),
        np.concatenate([p.cisterna_cm for p in parts]),
        tuple(label for p in parts for label in p.labels),
    )


def coupled_blocks(a: FloatArray, feeds: tuple[tuple[int, int], ...] = ()) -> list[IntArray]:
    """Groups of states that never influence one another (for any patient): the step matrix is
    block-diagonal over them, so each block is stepped on its own. ``feeds`` lists one-way
    influences (to, from) to leave out of the grouping; the stepper adds them as cross terms."""
    a = a.copy()
    for to, frm in feeds:
        a[:, to, frm] = 0.0
    linked = np.any(a != 0, axis=0)
    linked = linked | linked.T
    n = linked.shape[0]
    group = list(range(n))

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for i in range(n):
        for j in range(n):
            if linked[i, j]:
                group[root(i)] = root(j)
    roots = [root(i) for i in range(n)]
    return [np.array([i for i in range(n) if roots[i] == r], dtype=np.int64)
            for r in dict.fromkeys(roots)]


@dataclass
class Episodes:
    """Episodes of one adverse state: an episode starts when the severity reaches the first
    level and ends when it falls below half of it; it is counted once, by its peak level."""

    levels: tuple[float, ...]
    active: BoolArray
    peak: FloatArray
    started_at: FloatArray
    counts: IntArray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros(len(self.levels), dtype=np.int64)

    @classmethod
    def empty(cls, n: int, levels: tuple[float, ...]) -> Episodes:
        return cls(levels, np.zeros(n, bool), np.zeros(n), np.full(n, np.nan))

    def update(self, t: float, severity: FloatArray) -> BoolArray:
        """Feed the severities at time ``t``; returns where an episode has just begun."""
        begins = ~self.active & (severity >= self.levels[0])
        self.active |= begins
        self.started_at = np.where(begins, t, self.started_at)
        self.peak = np.where(self.active, np.maximum(self.peak, severity), self.peak)
        ends = self.active & (severity < self.levels[0] / 2)
        self._count(ends)
        self.active &= ~ends
        self.peak = np.where(ends, 0.0, self.peak)
        return begins

    def close(self) -> None:
        """Count the episodes still open at the end of the run."""
        self._count(self.active)

    def _count(self, mask: BoolArray) -> None:
        peaks = self.peak[mask]
        for i, level in enumerate(self.levels):
            upper = self.levels[i + 1] if i + 1 < len(self.levels) else np.inf
            self.counts[i] += int(np.count_nonzero((peaks >= level) & (peaks < upper)))


class FleetPatients:
    """The states of ``n`` patients, stepped exactly over steps of a few fixed lengths."""

    def __init__(self, patients: Patients, initial_dose_per_day: FloatArray) -> None:
        self.patients = patients
        self.system = build_system(patients)
        self.solver = ExactSolver(self.system)
        rates = np.zeros((len(patients), N_INPUTS))
        rates[:, INTRATHECAL] = np.asarray(initial_dose_per_day, float) / 24.0
        # The pocket feeds the CSF one way (model.py): kept as a cross term, so the CSF and the
        # pocket/plasma states are still stepped as two small blocks.
        self.blocks = coupled_blocks(self.system.a, feeds=((CSF, DEPOT),))
        self._cache: dict[float, list[Step]] = {}
        # Chronic patients: start at the steady state of their current program.
        self.x = steady_state(self.system, rates)
        d: Definitions = catalog().definitions
        n = len(patients)
        self.withdrawal = Episodes.empty(n, (d.withdrawal_early, d.withdrawal_severe))
        self.overdose = Episodes.empty(
            n, (d.overdose_drowsiness, d.overdose_respiratory, d.overdose_coma))

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def x(self) -> FloatArray:
        """The states, (n, 8)."""
        out = np.empty((len(self), self._n_states))
        for block, xb in zip(self.blocks, self._xb, strict=True):
            out[:, block] = xb
        return out

    @x.setter
    def x(self, value: FloatArray) -> None:
        self._n_states = value.shape[1]
        self._xb = [np.ascontiguousarray(value[:, b]) for b in self.blocks]

    def _matrices(self, hours: float) -> list[Step]:
        """(Phi, Gamma columns, cross terms) for ``hours`` per block of states (cached)."""
        hit = self._cache.get(hours)
        if hit is None:
            phi, gamma = self.solver.step_matrices(hours)
            hit = []
            for i, b in enumerate(self.blocks):
                g = gamma[:, b, :]
                # None where an input never reaches the block (it then costs nothing).
                cols = tuple(np.ascontiguousarray(g[:, :, j]) if np.any(g[:, :, j]) else None
                             for j in range(N_INPUTS))
                cross = tuple((j, np.ascontiguousarray(phi[:, b[:, None], c]))
                              for j, c in enumerate(self.blocks)
                              if j != i and np.any(phi[:, b[:, None], c]))
                hit.append((np.ascontiguousarray(phi[:, b[:, None], b]), cols, cross))
            self._cache[hours] = hit
        return hit

    def step(self, hours: float, intrathecal_mcg: FloatArray, tissue_mcg: FloatArray) -> None:
        """Advance every patient by ``hours`` with the doses given spread evenly over it."""
        u_it = (intrathecal_mcg / hours)[:, None]
        u_sc = (tissue_mcg / hours)[:, None] if np.any(tissue_mcg) else None
        old = self._xb
        new = []
        for i, (phi, cols, cross) in enumerate(self._matrices(hours)):
            # Each block is stepped on its own; its product is smaller than the whole system's.
            xb = np.einsum("nij,nj->ni", phi, old[i])
            for j, m in cross:
                if np.any(old[j]):
                    xb += np.einsum("nij,nj->ni", m, old[j])
            g_it, g_sc = cols[INTRATHECAL], cols[SUBCUTANEOUS]
            if g_it is not None:
                xb += g_it * u_it
            if u_sc is not None and g_sc is not None:
                xb += g_sc * u_sc
            new.append(xb)
        self._xb = new

    def readouts(self) -> dict[str, FloatArray]:
        return readouts(self.system, self.x)

    def observe(self, t_h: float) -> tuple[BoolArray, BoolArray]:
        """Update the episode counts at time ``t_h``: where withdrawal and overdose began."""
        withdrawal, overdose = severities(self.system, self.x)
        return self.withdrawal.update(t_h, withdrawal), self.overdose.update(t_h, overdose)
