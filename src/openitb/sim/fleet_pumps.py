"""Many pumps at once: the controller's delivery semantics on NumPy arrays.

One entry per pump. The arithmetic is the controller's, in integers: volumes in nanolitres,
and the fractional stroke carried between spans as an integer numerator over the per-pump
denominator ``conc * 86400 * nominal_nl`` (a dose rate of ``dose`` mcg/day is ``dose * 1e6 /
den`` strokes per second). So the stroke count over any split of time is the same as the
controller's exact fractions give, to the stroke (tests/unit/sim/test_fleet_differential.py).

Scope: constant concentration per pump (the path always carries the same drug, so the plug-flow
catheter delays nothing), integer doses in mcg/day, catheter faults at the connector (occlusion:
nothing moves; disconnection: everything goes to tissue; partial: a share of the flow leaks to
tissue), pocket fills, refills, a true stroke that may change at a refill (flow drift). Battery,
MRI and boluses are left to the single-pump controller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openitb.errors import InvalidInput

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DAY_S = 86_400
NO_FAULT, OCCLUSION, DISCONNECTION, PARTIAL = 0, 1, 2, 3
FAULT_CODES = {"none": NO_FAULT, "occlusion": OCCLUSION, "disconnection": DISCONNECTION,
               "partial": PARTIAL}
PPM = 1_000_000


@dataclass
class StepResult:
    """What one span [t0, t1) did, per pump."""

    strokes: IntArray
    to_csf_mcg: FloatArray
    to_tissue_mcg: FloatArray
    low_alarm_at: FloatArray  # seconds; NaN where the low-reservoir alarm was not raised
    empty_at: FloatArray  # seconds; NaN where the reservoir did not empty
    ran_dry: BoolArray  # the true reservoir ran out in this span (known to the pump or not)


def _ints(name: str, values: npt.ArrayLike, n: int | None, minimum: int) -> IntArray:
    a = np.asarray(values)
    if a.ndim != 1 or (n is not None and a.size != n):
        raise InvalidInput(name, f"shape {a.shape}", f"one value per pump ({n})")
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise InvalidInput(name, "non-integer values", "whole numbers")
    out = a.astype(np.int64)
    if np.any(out < minimum):
        raise InvalidInput(name, int(out.min()), f"{minimum} or more")
    return out


class FleetPumps:
    """The state of ``n`` pumps, each with its own true stroke, concentration and threshold."""

    def __init__(self, nominal_nl: npt.ArrayLike, true_stroke_nl: npt.ArrayLike,
                 concentration_mcg_per_ml: npt.ArrayLike, low_alarm_nl: npt.ArrayLike) -> None:
        self.nominal_nl = _ints("nominal_nl", nominal_nl, None, 1)
        n = self.nominal_nl.size
        self.true_stroke_nl = _ints("true_stroke_nl", true_stroke_nl, n, 1)
        self.conc = _ints("concentration_mcg_per_ml", concentration_mcg_per_ml, n, 1)
        self.low_nl = _ints("low_alarm_nl", low_alarm_nl, n, 0)
        self.den = self.conc * DAY_S * self.nominal_nl
        zeros = np.zeros(n, dtype=np.int64)
        self.est_nl, self.res_nl, self.acc = zeros.copy(), zeros.copy(), zeros.copy()
        self.strokes, self.delivered_nl, self.tissue_nl = zeros.copy(), zeros.copy(), zeros.copy()
        self.filled_nl, self.withdrawn_nl = zeros.copy(), zeros.copy()
        self.empty = np.ones(n, dtype=bool)  # nothing in the reservoir until the first fill
        self.low_on = np.zeros(n, dtype=bool)
        self.fault = np.zeros(n, dtype=np.int8)
        self.loss_ppm = np.zeros(n, dtype=np.int64)  # share of the flow lost by a partial fault

    def __len__(self) -> int:
        return int(self.nominal_nl.size)

    # ---- actions ---------------------------------------------------------------------------
    def refill(self, mask: BoolArray, volume_nl: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Empty and refill the pumps in ``mask``: (withdrawn, expected) in nL for every pump
        (0 where not refilled). As the controller: the estimate is reset to the new volume, an
        alarm clears when its condition has gone."""
        vol = np.broadcast_to(np.asarray(volume_nl, dtype=np.int64), (len(self),))
        withdrawn = np.where(mask, self.res_nl, 0)
        expected = np.where(mask, self.est_nl, 0)
        self.withdrawn_nl += withdrawn
        self.filled_nl += np.where(mask, vol, 0)
        self.res_nl = np.where(mask, vol, self.res_nl)
        self.est_nl = np.where(mask, vol, self.est_nl)
        full = vol >= self.nominal_nl
        self.empty = np.where(mask, ~full, self.empty)
        self.acc = np.where(mask & ~full, 0, self.acc)
        self.low_on = np.where(mask, vol <= self.low_nl, self.low_on)
        return withdrawn, expected

    def pocket_fill(self, mask: BoolArray, volume_nl: npt.ArrayLike) -> FloatArray:
        """Drug that went into the pocket instead of the reservoir: mcg into tissue per pump."""
        vol = np.minimum(np.broadcast_to(np.asarray(volume_nl, dtype=np.int64), (len(self),)),
                         self.res_nl)
        vol = np.where(mask, vol, 0)
        self.res_nl -= vol
        self.tissue_nl += vol
        return np.asarray(vol * self.conc / 1e6, dtype=np.float64)

    def set_fault(self, mask: BoolArray, kind: str, loss: npt.ArrayLike | None = None) -> None:
        """Set the catheter state of the pumps in ``mask``; a partial fault loses the share
        ``loss`` (0 to 1, per pump or one for all) of the flow to tissue."""
        if kind not in FAULT_CODES:
            raise InvalidInput("fault", kind, ", ".join(FAULT_CODES))
        self.fault = np.where(mask, np.int8(FAULT_CODES[kind]), self.fault).astype(np.int8)
        if kind == "partial":
            share = np.broadcast_to(np.asarray(1.0 if loss is None else loss, float), (len(self),))
            if not np.all((share >= 0) & (share <= 1)):
                raise InvalidInput("loss", "values outside 0-1", "a share of the flow from 0 to 1")
            self.loss_ppm = np.where(mask, np.round(share * PPM).astype(np.int64), self.loss_ppm)

    def set_true_stroke(self, mask: BoolArray, true_stroke_nl: npt.ArrayLike) -> None:
        """The pumps in ``mask`` now move ``true_stroke_nl`` per stroke (flow drift)."""
        new = _ints("true_stroke_nl", np.broadcast_to(np.asarray(true_stroke_nl), (len(self),)),
                    len(self), 1)
        self.true_stroke_nl = np.where(mask, new, self.true_stroke_nl)

    # ---- time ------------------------------------------------------------------------------
    def deliver(self, t0: int, t1: int, dose_per_day: npt.ArrayLike) -> StepResult:
        """Run every pump over [t0, t1) at a constant dose rate (integer mcg/day per pump)."""
        dt = int(t1) - int(t0)
        if dt <= 0:
            raise InvalidInput("span", dt, "more than 0 seconds")
        num = np.asarray(dose_per_day, dtype=np.int64) * 1_000_000
        nan = np.full(len(self), np.nan)
        active = ~self.empty & (num > 0)
        total = self.acc + num * dt
        n = np.where(active, total // self.den, 0)
        k_empty = self.est_nl // self.nominal_nl
        hits_empty = active & (n >= k_empty)
        n = np.where(hits_empty, k_empty, n)
        safe_num = np.where(num > 0, num, 1)
        empty_at = np.where(hits_empty, t0 + (k_empty * self.den - self.acc) / safe_num, nan)
        empty_at = np.where(hits_empty & (k_empty == 0), float(t0), empty_at)
        # The low-reservoir alarm sounds at the stroke that takes the estimate to the threshold.
        above = self.est_nl - self.low_nl
        k_low = -(-above // self.nominal_nl)
        raises_low = active & (n > 0) & ~self.low_on & (above > 0) & (k_low <= n)
        low_at = np.where(raises_low, t0 + (k_low * self.den - self.acc) / safe_num, nan)
        self.low_on |= raises_low
        self.acc = np.where(active, np.where(hits_empty, 0, total - n * self.den), self.acc)
        self.empty |= hits_empty
        self.strokes += n
        self.est_nl -= n * self.nominal_nl
        moved = np.where(self.fault == OCCLUSION, 0, np.minimum(n * self.true_stroke_nl, self.res_nl))
        ran_dry = (moved > 0) & (moved == self.res_nl)
        self.res_nl -= moved
        lost = self.fault == DISCONNECTION
        leaked = np.where(self.fault == PARTIAL, moved * self.loss_ppm // PPM, 0)
        to_tissue = np.where(lost, moved, leaked)
        to_csf = moved - to_tissue
        self.delivered_nl += to_csf
        self.tissue_nl += to_tissue
        return StepResult(n, to_csf * self.conc / 1e6, to_tissue * self.conc / 1e6, low_at,
                          empty_at, ran_dry)

    def conserved(self) -> bool:
        return bool(np.all(self.filled_nl - self.withdrawn_nl
                           == self.res_nl + self.delivered_nl + self.tissue_nl))
