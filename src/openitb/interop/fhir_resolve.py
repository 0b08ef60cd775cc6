"""Resolving references inside a Bundle, by the rules of the FHIR specification ("Resolving
references in Bundles"): an absolute reference (http..., urn:uuid:, urn:oid:) matches an entry
whose fullUrl is the same; a relative reference (Type/id) is taken relative to the base of the
fullUrl of the entry that holds it, when that fullUrl is a RESTful URL; a fragment (#id) names a
contained resource. Anything else does not resolve inside the Bundle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_RESTFUL = re.compile(r"^(?P<base>https?://.+?)/(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
                      r"(/_history/[A-Za-z0-9\-.]{1,64})?$")
_RELATIVE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Link:
    source: str  # fullUrl of the entry holding the reference
    reference: str
    target: str | None  # fullUrl of the entry it resolves to, None when it does not


def references(node: Any) -> Iterator[str]:
    """Every Reference.reference string in a resource (contained resources excluded)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            elif key != "contained":
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(bundle: dict[str, Any]) -> list[Link]:
    entries = bundle.get("entry") or []
    by_url = {e.get("fullUrl"): e for e in entries if e.get("fullUrl")}
    links: list[Link] = []
    for e in entries:
        source = e.get("fullUrl") or ""
        res = e.get("resource") or {}
        contained = {c.get("id") for c in res.get("contained", [])}
        for ref in references(res):
            target: str | None = None
            if ref.startswith("#"):
                target = source if ref[1:] in contained else None
            elif ref.startswith(("urn:uuid:", "urn:oid:", "http://", "https://")):
                target = ref if ref in by_url else None
            elif _RELATIVE.match(ref):
                m = _RESTFUL.match(source)
                if m:
                    url = f"{m.group('base')}/{ref}"
                    target = url if url in by_url else None
            links.append(Link(source, ref, target))
    return links


def unresolved(bundle: dict[str, Any]) -> list[Link]:
    return [link for link in resolve(bundle) if link.target is None]


def target_of(bundle: dict[str, Any], source: str, reference: str) -> dict[str, Any] | None:
    """The resource a reference (held by the entry ``source``) resolves to."""
    for link in resolve(bundle):
        if link.source == source and link.reference == reference and link.target:
            for e in bundle.get("entry") or []:
                if e.get("fullUrl") == link.target:
                    resource: dict[str, Any] = e["resource"]
                    return resource
    return None
