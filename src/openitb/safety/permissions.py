"""The permission table (``data/roles.toml``): which role may give which change.

Read once; immutable. ``OPENITB_ROLES`` may point at a site's own table. The clinic's accounts
read the same table (:func:`load_permissions`) instead of repeating it.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from openitb.errors import InvalidInput
from openitb.therapy.guardrails import Classification


class Role(str, Enum):
    NURSE = "nurse"
    PHYSICIAN = "physician"
    PATIENT = "patient"


def parse_role(text: str, field: str = "role") -> Role:
    try:
        return Role(str(text).strip().lower())
    except ValueError:
        raise InvalidInput(field, text, "one of " + ", ".join(r.value for r in Role)) from None


@dataclass(frozen=True)
class Permissions:
    by_classification: dict[Classification, frozenset[Role]]
    by_action: dict[str, frozenset[Role]]
    reason_min_chars: int
    source: str

    def may_confirm(self, role: Role, classification: Classification) -> bool:
        return role in self.by_classification.get(classification, frozenset())

    def may_propose(self, role: Role, action: str) -> bool:
        return role in self.by_action.get(action, frozenset())

    def roles_for(self, classification: Classification, action: str) -> tuple[Role, ...]:
        ok = self.by_classification.get(classification, frozenset()) & \
            self.by_action.get(action, frozenset())
        return tuple(r for r in Role if r in ok)


def _roles(values: Any, where: str) -> frozenset[Role]:
    if not isinstance(values, list):
        raise InvalidInput(where, values, "a list of roles")
    return frozenset(parse_role(v, where) for v in values)


def _load(data: dict[str, Any]) -> Permissions:
    by_c = {c: _roles(data["classification"].get(c.value, []), f"classification.{c.value}")
            for c in Classification}
    by_a = {str(k): _roles(v, f"actions.{k}") for k, v in data["actions"].items()}
    return Permissions(by_c, by_a, int(data["override"]["reason_min_chars"]), str(data["source"]))


@lru_cache(maxsize=4)
def load_permissions(path: str | None = None) -> Permissions:
    """The shipped table, or ``path`` / ``$OPENITB_ROLES``."""
    path = path or os.environ.get("OPENITB_ROLES")
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("openitb.data").joinpath("roles.toml").read_text(encoding="utf-8")
    return _load(tomllib.loads(text))
