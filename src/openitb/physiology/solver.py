"""Two solvers of the patient system for piecewise-constant inputs.

* :class:`ExactSolver`: over an interval of length dt with constant input u the solution is
  ``x(t+dt) = Phi x(t) + Gamma u`` with ``[[Phi, Gamma], [0, I]] = expm([[A, B], [0, 0]] dt)``.
  The matrix exponential is computed once per parameter set and interval length (and cached),
  for all patients at once; stepping is a batched matrix-vector product. Exact up to rounding.
* :func:`solve_reference`: SciPy ``solve_ivp`` (DOP853, tight tolerances), restarted at every
  input change, one patient at a time. Slow; used to check the exact solver.

An input schedule is a vector of ``times`` (hours, increasing, m+1 points) and ``rates``
(mcg/h per input) shaped (m, 2) for every patient alike or (n, m, 2) per patient: rate k holds
over [times[k], times[k+1]). States are returned at every time point.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from openitb.errors import InvalidInput
from openitb.physiology.model import N_INPUTS, N_STATES, System

Array = npt.NDArray[np.float64]


def _check_schedule(system: System, times: Array, rates: Array) -> tuple[Array, Array]:
    t = np.asarray(times, dtype=np.float64)
    r = np.asarray(rates, dtype=np.float64)
    if t.ndim != 1 or t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise InvalidInput("times", f"shape {t.shape}", "a 1-D array of increasing finite hours")
    m = t.size - 1
    if r.shape not in ((m, N_INPUTS), (len(system), m, N_INPUTS)):
        raise InvalidInput("rates", f"shape {r.shape}",
                           f"({m}, {N_INPUTS}) or ({len(system)}, {m}, {N_INPUTS}) mcg/h")
    if not np.all(np.isfinite(r)) or np.any(r < 0):
        raise InvalidInput("rates", "negative or non-finite", "finite dose rates of 0 or more mcg/h")
    return t, r


def _initial(system: System, x0: Array | None) -> Array:
    if x0 is None:
        return np.zeros((len(system), N_STATES))
    x = np.array(np.broadcast_to(np.asarray(x0, float), (len(system), N_STATES)))
    return x


class ExactSolver:
    """Closed-form stepping of the linear patient system (vectorised over patients)."""

    def __init__(self, system: System) -> None:
        self.system = system
        self._cache: dict[float, tuple[Array, Array]] = {}

    def step_matrices(self, dt: float) -> tuple[Array, Array]:
        """(Phi, Gamma) for an interval of ``dt`` hours: shapes (n, 9, 9) and (n, 9, 2)."""
        key = round(float(dt), 9)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        n = len(self.system)
        size = N_STATES + N_INPUTS
        m = np.zeros((n, size, size))
        m[:, :N_STATES, :N_STATES] = self.system.a * key
        m[:, :N_STATES, N_STATES:] = self.system.b * key
        e = np.asarray(expm(m), dtype=np.float64)
        out = (np.ascontiguousarray(e[:, :N_STATES, :N_STATES]),
               np.ascontiguousarray(e[:, :N_STATES, N_STATES:]))
        if len(self._cache) < 4096:
            self._cache[key] = out
        return out

    def iterate(self, times: Array, rates: Array, x0: Array | None = None) -> Iterator[Array]:
        """Yield the states (n, 9) at times[0], times[1], ... without storing them."""
        t, r = _check_schedule(self.system, times, rates)
        x = _initial(self.system, x0)
        yield x.copy()
        shared = r.ndim == 2
        dts = np.diff(t)
        for k in range(dts.size):
            phi, gamma = self.step_matrices(float(dts[k]))
            u = r[k] if shared else r[:, k, :]
            x = np.matmul(phi, x[..., None])[..., 0]
            if shared:
                if u.any():
                    x += gamma @ u
            else:
                x += np.matmul(gamma, u[..., None])[..., 0]
            yield x

    def solve(self, times: Array, rates: Array, x0: Array | None = None) -> Array:
        """States at every time point: (n, m+1, 9)."""
        t = np.asarray(times, dtype=np.float64)
        out = np.empty((len(self.system), t.size, N_STATES))
        for k, x in enumerate(self.iterate(t, rates, x0)):
            out[:, k, :] = x
        return out


def solve_reference(system: System, times: Array, rates: Array, x0: Array | None = None, *,
                    rtol: float = 1e-10, atol: float = 1e-10,
                    patients: list[int] | None = None) -> Array:
    """The same schedule integrated numerically with ``solve_ivp`` (for checking): (k, m+1, 9)
    for the ``patients`` asked (all by default)."""
    t, r = _check_schedule(system, times, rates)
    x_all = _initial(system, x0)
    which = list(range(len(system))) if patients is None else list(patients)
    out = np.empty((len(which), t.size, N_STATES))
    for row, i in enumerate(which):
        a, b = system.a[i], system.b[i]
        x = x_all[i].copy()
        out[row, 0] = x
        for k in range(t.size - 1):
            u = r[k] if r.ndim == 2 else r[i, k]
            bu = b @ u

            def f(_t: float, y: Array, a: Array = a, bu: Array = bu) -> Array:
                return np.asarray(a @ y + bu, dtype=np.float64)

            def jac(_t: float, _y: Array, a: Array = a) -> Array:
                return a

            sol = solve_ivp(f, (float(t[k]), float(t[k + 1])), x, method="DOP853",
                            rtol=rtol, atol=atol)
            if not sol.success:  # pragma: no cover - DOP853 on a stable linear system
                raise RuntimeError(f"solve_ivp failed: {sol.message}")
            x = sol.y[:, -1]
            out[row, k + 1] = x
    return out
