"""The patient model: a linear compartment system and the nonlinear read-outs built on it.

States (per patient), all driven linearly by two inputs (mcg/h):

====  ===================  =====  =====================================================
 i    state                unit   meaning
====  ===================  =====  =====================================================
 0    ``a_csf``            mcg    drug in the CSF region around the catheter tip
 1    ``a_tissue``         mcg    drug in the slow peripheral compartment (spinal tissue)
 2    ``ce_transit``       ng/mL  first of two effect compartments in series (delay)
 3    ``ce``               ng/mL  effect-site concentration (tip units)
 4    ``adapted``          ng/mL  the exposure the body has adapted to (slow follower of ce)
 5    ``deficit``          ng/mL  lagged exposure deficit (adapted - ce), drives withdrawal
 6    ``a_depot``          mcg    drug in the pump pocket / subcutaneous tissue
 7    ``a_plasma``         mcg    drug in the systemic circulation
 8    ``ce_plasma``        ng/mL  brain effect compartment of systemic drug
====  ===================  =====  =====================================================

Inputs: 0 = intrathecal dose rate at the catheter tip, 1 = dose rate into the pocket/tissue.
Because the system is linear and time-invariant, :mod:`openitb.physiology.solver` can solve it
exactly for piecewise-constant inputs. Effect (MAS), withdrawal and overdose severities are
nonlinear functions of the states, computed afterwards (:func:`readouts`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from openitb.physiology.params import Patients
from openitb.physiology.spine import gradient_factor

Array = npt.NDArray[np.float64]

STATES = ("a_csf", "a_tissue", "ce_transit", "ce", "adapted", "deficit", "a_depot", "a_plasma",
          "ce_plasma")
N_STATES = len(STATES)
N_INPUTS = 2
CSF, TISSUE, TRANSIT, CE, ADAPTED, DEFICIT, DEPOT, PLASMA, CE_PLASMA = range(N_STATES)
SIGNED = (DEFICIT,)  # the only state that may be negative
INTRATHECAL, SUBCUTANEOUS = 0, 1
LN2 = math.log(2.0)


@dataclass(frozen=True)
class System:
    """dx/dt = A x + B u for n patients: A (n, 9, 9), B (n, 9, 2); time in hours."""

    a: Array
    b: Array
    patients: Patients

    def __len__(self) -> int:
        return int(self.a.shape[0])


def build_system(patients: Patients) -> System:
    p = patients.p
    n = len(patients)
    vc, cl, q, vt = p("csf_volume_ml"), p("clearance_ml_per_h"), p("exchange_ml_per_h"), p("tissue_volume_ml")
    ke0 = p("ke0_per_h")
    kad = LN2 / p("adaptation_half_life_h")
    kw = LN2 / p("withdrawal_lag_half_life_h")
    ka = p("sc_absorption_per_h")
    vs, cls_ = p("plasma_volume_l"), p("plasma_clearance_l_per_h")
    kes = p("plasma_ke0_per_h")
    a = np.zeros((n, N_STATES, N_STATES))
    a[:, CSF, CSF] = -(cl + q) / vc
    a[:, CSF, TISSUE] = q / vt
    a[:, TISSUE, CSF] = q / vc
    a[:, TISSUE, TISSUE] = -q / vt
    a[:, TRANSIT, CSF] = ke0 * 1000.0 / vc  # mcg in vc mL -> ng/mL
    a[:, TRANSIT, TRANSIT] = -ke0
    a[:, CE, TRANSIT] = ke0
    a[:, CE, CE] = -ke0
    a[:, ADAPTED, CE] = kad
    a[:, ADAPTED, ADAPTED] = -kad
    a[:, DEFICIT, ADAPTED] = kw
    a[:, DEFICIT, CE] = -kw
    a[:, DEFICIT, DEFICIT] = -kw
    # Drug in the pocket is absorbed into the blood; a small share reaches the spinal fluid
    # (along the catheter's track), which is what makes a pocket fill an intrathecal overdose.
    f_csf = p("pocket_to_csf_fraction")
    a[:, DEPOT, DEPOT] = -ka
    a[:, PLASMA, DEPOT] = ka * (1.0 - f_csf)
    a[:, CSF, DEPOT] = ka * f_csf
    a[:, PLASMA, PLASMA] = -cls_ / vs
    a[:, CE_PLASMA, PLASMA] = kes / vs  # mcg in L -> ng/mL
    a[:, CE_PLASMA, CE_PLASMA] = -kes
    b = np.zeros((n, N_STATES, N_INPUTS))
    b[:, CSF, INTRATHECAL] = 1.0
    b[:, DEPOT, SUBCUTANEOUS] = 1.0
    return System(a, b, patients)


def rhs(system: System, index: int, x: Array, u: Array) -> Array:
    """Right-hand side for one patient (used by the reference solver)."""
    return np.asarray(system.a[index] @ x + system.b[index] @ u, dtype=np.float64)


def _hill(x: Array, x50: Array | float, n: Array | float) -> Array:
    xn = np.power(np.maximum(x, 0.0), n)
    return np.asarray(xn / (np.power(x50, n) + xn), dtype=np.float64)


READOUTS = (
    "csf_tip_ng_per_ml", "csf_lumbar_ng_per_ml", "csf_cisternal_ng_per_ml", "ce_target_ng_per_ml",
    "plasma_ng_per_ml", "mas_drop", "mas", "withdrawal", "overdose",
)


def readouts(system: System, x: Array) -> dict[str, Array]:
    """Nonlinear read-outs of states ``x`` shaped (n, ..., 9) (the patient axis first).

    Returns arrays shaped like ``x[..., 0]``: CSF concentrations at the tip, at the lumbar
    puncture level and at the cisterna; the effect-site concentration at the target level; plasma;
    MAS drop and MAS; withdrawal and overdose severities (0 to 1).
    """
    pts = system.patients
    extra = x.ndim - 2

    def col(v: Array) -> Array:
        return v.reshape(v.shape + (1,) * extra)

    p = pts.p
    g = col(p("gradient_per_cm"))
    tip = col(pts.tip_cm)
    g_lumbar = gradient_factor(tip, col(pts.lumbar_cm), g)
    g_cis = gradient_factor(tip, col(pts.cisterna_cm), g)
    g_target = gradient_factor(tip, col(pts.target_cm), g)
    csf_tip = x[..., CSF] / col(p("csf_volume_ml")) * 1000.0
    ce = x[..., CE]
    ce_target = ce * g_target
    drop = col(p("emax_mas")) * _hill(ce_target, col(p("ec50_ng_per_ml")), col(p("hill")))
    withdrawal, overdose = _severities(x, col, p, g_cis)
    mas = np.clip(col(p("mas_baseline")) - drop + col(p("rebound_mas")) * withdrawal, 0.0, 4.0)
    return {
        "csf_tip_ng_per_ml": csf_tip,
        "csf_lumbar_ng_per_ml": csf_tip * g_lumbar,
        "csf_cisternal_ng_per_ml": csf_tip * g_cis,
        "ce_target_ng_per_ml": ce_target,
        "plasma_ng_per_ml": x[..., PLASMA] / col(p("plasma_volume_l")),
        "mas_drop": drop,
        "mas": mas,
        "withdrawal": withdrawal,
        "overdose": overdose,
    }


def _severities(x: Array, col: Callable[[Array], Array], p: Callable[[str], Array],
                g_cis: Array) -> tuple[Array, Array]:
    """Withdrawal and overdose severities (0 to 1) of states ``x``."""
    ce, adapted, deficit = x[..., CE], x[..., ADAPTED], x[..., DEFICIT]
    relative_deficit = np.maximum(deficit, 0.0) / np.maximum(
        adapted, col(p("dependence_floor_ng_per_ml")))
    withdrawal = _hill(relative_deficit, col(p("withdrawal_deficit50")), 3.0)
    tolerance = col(p("overdose_ng_per_ml")) + col(p("tolerance_gain")) * np.maximum(adapted, 0.0) * g_cis
    exposure = (np.maximum(ce, 0.0) * g_cis / tolerance
                + np.maximum(x[..., CE_PLASMA], 0.0) / col(p("plasma_overdose_ng_per_ml")))
    return withdrawal, _hill(exposure, 1.0, col(p("overdose_hill")))


def severities(system: System, x: Array) -> tuple[Array, Array]:
    """Only the withdrawal and overdose severities of states ``x`` (n, states): what a fleet study
    watches at every step, at a fraction of the cost of all the read-outs."""
    pts = system.patients
    g_cis = gradient_factor(pts.tip_cm, pts.cisterna_cm, pts.p("gradient_per_cm"))
    return _severities(x, lambda v: v, pts.p, g_cis)


def steady_state(system: System, rates: Array) -> Array:
    """States at steady state under constant inputs ``rates`` (n, 2) or (2,): x = -A^-1 B u."""
    u = np.broadcast_to(np.asarray(rates, float), (len(system), N_INPUTS))
    bu = np.einsum("nij,nj->ni", system.b, u)
    return np.asarray(-np.linalg.solve(system.a, bu[..., None])[..., 0], dtype=np.float64)
