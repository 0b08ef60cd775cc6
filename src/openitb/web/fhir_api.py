"""The read-only FHIR face under /fhir: metadata, read of each resource type,
Patient?identifier=, Patient/{id}/$everything. Same sign-in as the API (web/deps.py) and the
same role rules, applied by the clinic's read use cases: staff read any patient, a patient or
caregiver only their own record.

R5 by default; R4 when the Accept header says ``fhirVersion=4.0`` (or ``?fhirVersion=4.0``, for
a browser). Every answer states its version in the content type. Errors are OperationOutcomes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from openitb.clinic import queries
from openitb.clinic.uow import Actor
from openitb.errors import InvalidInput, RefusedOperation
from openitb.interop import fhir
from openitb.interop.fhir_r4 import to_r4
from openitb.web.deps import NotSignedIn, signed_in, uow

router = APIRouter(prefix="/fhir", tags=["fhir"])
TYPES = ("Patient", "Condition", "Observation", "MedicationAdministration", "Medication",
         "MedicationRequest", "Device", "Procedure", "Flag")
_ID = re.compile(r"^p(\d{1,9})(-[A-Za-z0-9\-.]{1,50})?$")
_VERSION = re.compile(r"fhirversion\s*=\s*\"?([0-9.]+)\"?", re.I)
FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {fhir.media_type(fhir.R5): {}, fhir.media_type(fhir.R4): {}},
          "description": "a FHIR resource (R5 unless R4 was asked for)"},
    400: {"description": "a parameter out of range (OperationOutcome)"},
    401: {"description": "not signed in (OperationOutcome)"},
    403: {"description": "not allowed (OperationOutcome)"},
    404: {"description": "no such resource (OperationOutcome)"},
    406: {"description": "a FHIR version other than 5.0 or 4.0 was asked for"},
}


class NotAcceptable(InvalidInput):
    pass


def wanted_version(request: Request) -> str:
    """``fhirVersion`` from the query, else from the Accept header; R5 when neither says."""
    asked = request.query_params.get("fhirVersion")
    if asked is None:
        m = _VERSION.search(request.headers.get("accept", ""))
        asked = m.group(1) if m else fhir.R5
    version = {"5.0": fhir.R5, "5.0.0": fhir.R5, "4.0": fhir.R4, "4.0.1": fhir.R4}.get(asked)
    if version is None:
        raise NotAcceptable("fhirVersion", asked, "5.0 (R5, the default) or 4.0 (R4)")
    return version


def _respond(body: dict[str, Any], version: str, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=fhir.media_type(version))


def _outcome(status: int, code: str, text: str, version: str) -> Response:
    return _respond({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": text}]}, version, status)


def _answer(request: Request, build: Callable[[str], dict[str, Any]]) -> Response:
    """Run ``build(version)``; the clinic's refusals become OperationOutcomes (and are logged
    by the unit of work, like the API's)."""
    version = fhir.R5
    try:
        version = wanted_version(request)
        return _respond(build(version), version)
    except NotAcceptable as exc:
        return _outcome(406, "not-supported", f"{exc.field}: got {exc.given!r}; {exc.allowed}",
                        version)
    except NotSignedIn:
        try:
            with request.app.state.clinic.uow(Actor("anonymous", "anonymous")) as u:
                u.action = f"GET {request.url.path}"[:60]
                raise RefusedOperation("not signed in", code="unauthenticated")
        except RefusedOperation:
            pass
        return _outcome(401, "login", "sign in first", version)
    except InvalidInput as exc:
        return _outcome(400, "invalid", f"{exc.field}: got {exc.given!r}; {exc.allowed}", version)
    except RefusedOperation as exc:
        from openitb.web.app import STATUS

        status = STATUS.get(exc.code, 422)
        code = {403: "forbidden", 404: "not-found", 401: "login"}.get(status, "processing")
        return _outcome(status, code, exc.reason, version)


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"


def _resources(request: Request, actor: Actor, patient_id: int) -> list[tuple[str, dict[str, Any]]]:
    with uow(request, actor) as u:
        u.action = "fhir_read"
        record = queries.patient_record(u, patient_id)
        return fhir.patient_resources(record, fhir.Refs(fhir.identifier_system(), "rest",
                                                        _base(request)))


def _searchset(request: Request, entries: list[tuple[str, dict[str, Any]]],
               version: str) -> dict[str, Any]:
    with request.app.state.clinic.factory() as s:
        from openitb.clinic.clock import clinic_now

        now = clinic_now(s)
    bundle = fhir.bundle_dict(entries, now=now, kind="searchset", version=version)
    fhir.validate(bundle, version)
    return bundle


@router.get("/metadata", responses=FHIR_RESPONSES, response_class=Response)
def metadata(request: Request) -> Response:
    """The CapabilityStatement (no sign-in needed, as FHIR clients expect)."""
    def build(version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = [
            {"type": kind, "interaction": [{"code": "read"}]} for kind in TYPES]
        resources[0]["interaction"].append({"code": "search-type"})
        resources[0]["searchParam"] = [{"name": "identifier", "type": "token"}]
        resources[0]["operation"] = [{
            "name": "everything",
            "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]
        cap = {"resourceType": "CapabilityStatement", "status": "active",
               "date": "2026-01-01", "kind": "instance",
               "software": {"name": "OpenITB clinic"},
               "implementation": {"description": "OpenITB clinic (simulation and training "
                                                 "software, not a medical device)",
                                  "url": _base(request)},
               "fhirVersion": fhir.FHIR_VERSIONS[fhir.R5], "format": ["json"],
               "rest": [{"mode": "server", "resource": resources}]}
        out = to_r4(cap) if version == fhir.R4 else cap
        fhir.validate_resource(out, version)
        return out
    return _answer(request, build)


@router.get("/Patient", responses=FHIR_RESPONSES, response_class=Response)
def search_patients(request: Request, identifier: str = "") -> Response:
    """``identifier=system|value`` (or ``value``): a searchset with the matching patient. A
    patient searching for someone else finds nothing."""
    def build(version: str) -> dict[str, Any]:
        actor = signed_in(request)
        if not identifier.strip() or len(identifier) > 300:
            raise InvalidInput("identifier", identifier[:80],
                               "system|value or value, e.g. ITB-1003 (up to 300 characters)")
        system, _, value = identifier.rpartition("|")
        entries: list[tuple[str, dict[str, Any]]] = []
        if not system or system == fhir.identifier_system():
            from sqlalchemy import select

            from openitb.store.models import Patient

            with uow(request, actor) as u:
                pid = u.session.scalar(select(Patient.id).where(Patient.mrn == value))
            own = actor.role not in ("patient",) or actor.patient_id == pid
            if pid is not None and own:
                entries = [e for e in _resources(request, actor, pid)
                           if e[1]["resourceType"] == "Patient"]
        return _searchset(request, entries, version)
    return _answer(request, build)


@router.get("/Patient/{ident}/$everything", responses=FHIR_RESPONSES, response_class=Response)
def everything(request: Request, ident: str) -> Response:
    def build(version: str) -> dict[str, Any]:
        actor = signed_in(request)
        m = _ID.match(ident)
        if not m or m.group(2):
            raise RefusedOperation(f"no Patient with id {ident}", code="not_found")
        return _searchset(request, _resources(request, actor, int(m.group(1))), version)
    return _answer(request, build)


@router.get("/{kind}/{ident}", responses=FHIR_RESPONSES, response_class=Response)
def read(request: Request, kind: str, ident: str) -> Response:
    def build(version: str) -> dict[str, Any]:
        actor = signed_in(request)
        if kind not in TYPES:
            raise RefusedOperation(f"resource type {kind} is not served here", code="not_found")
        m = _ID.match(ident)
        if not m:
            raise RefusedOperation(f"no {kind} with id {ident}", code="not_found")
        for _url, res in _resources(request, actor, int(m.group(1))):
            if res["resourceType"] == kind and res["id"] == ident:
                out = to_r4(res) if version == fhir.R4 else res
                fhir.validate_resource(out, version)
                return out
        raise RefusedOperation(f"no {kind} with id {ident}", code="not_found")
    return _answer(request, build)


def export_response(request: Request, patient_id: int, kind: str) -> Response:
    """``GET /api/v1/patients/{id}/fhir``: the whole record as one Bundle (collection, or
    transaction with ``?type=transaction``), urn:uuid fullUrls, R5 or R4 as negotiated."""
    def build(version: str) -> dict[str, Any]:
        if kind not in ("collection", "transaction"):
            raise InvalidInput("type", kind, "collection or transaction")
        actor = signed_in(request)
        with uow(request, actor) as u:
            u.action = "fhir_export"
            return fhir.patient_bundle(queries.patient_record(u, patient_id), now=u.now,
                                       kind="transaction" if kind == "transaction"
                                       else "collection", version=version)
    return _answer(request, build)
