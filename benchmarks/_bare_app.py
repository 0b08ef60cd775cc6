"""The reference for bench_clinic: a bare FastAPI application with the clinic's three measured
routes, each answering a constant, served by the same uvicorn with the same protocol. What the
clinic costs above this is the clinic's own work (sessions, database, templates)."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/")
def home() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/patients/{patient_id}")
def patient(patient_id: int) -> dict[str, int]:
    return {"id": patient_id}
