"""Spinal levels as positions along the canal, and the rostral CSF concentration gradient.

Positions are centimetres caudal from the foramen magnum for an adult spine (vertebra plus
disc heights: cervical 1.8 cm, thoracic 2.4 cm, lumbar 3.6 cm; default values, see
docs/physiology.md), scaled per patient. The cisterna magna sits 1.5 cm above the foramen.

Gradient (a model assumption, docs/physiology.md): the concentration rostral to the catheter tip
falls exponentially with distance, ``exp(-gradient_per_cm * distance)``; at the tip and caudal
to it (the lumbar sac below a thoracolumbar tip) the concentration is that of the tip region.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from openitb.errors import InvalidInput

_HEIGHT_CM = {"C": 1.8, "T": 2.4, "L": 3.6, "S": 3.6}
_COUNT = {"C": 7, "T": 12, "L": 5, "S": 1}
CISTERNA = "cisterna"
_CISTERNA_CM = -1.5
_LEVEL = re.compile(r"^\s*([CTLS])\s*(\d{1,2})\s*$", re.IGNORECASE)

ALLOWED = "a vertebral level C1-C7, T1-T12, L1-L5, S1, or 'cisterna'"


def level_position_cm(level: str, field: str = "level", scale: float = 1.0) -> float:
    """Centre of the vertebral level, in cm caudal from the foramen magnum (times ``scale``)."""
    if not isinstance(level, str):
        raise InvalidInput(field, level, ALLOWED)
    if level.strip().lower() == CISTERNA:
        return _CISTERNA_CM * scale
    m = _LEVEL.match(level)
    if m is None:
        raise InvalidInput(field, level, ALLOWED)
    region, n = m.group(1).upper(), int(m.group(2))
    if not 1 <= n <= _COUNT[region]:
        raise InvalidInput(field, level, ALLOWED)
    pos = 0.0
    for r in "CTLS":
        if r == region:
            pos += (n - 0.5) * _HEIGHT_CM[r]
            break
        pos += _COUNT[r] * _HEIGHT_CM[r]
    return pos * scale


def gradient_factor(
    tip_cm: npt.ArrayLike, level_cm: npt.ArrayLike, gradient_per_cm: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Concentration at ``level_cm`` as a fraction of the concentration at the tip."""
    rostral = np.maximum(0.0, np.asarray(tip_cm, float) - np.asarray(level_cm, float))
    return np.asarray(np.exp(-np.asarray(gradient_per_cm, float) * rostral), dtype=np.float64)
