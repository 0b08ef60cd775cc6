"""Run a fleet study: partitions of patients × policies on Dask, the rates and their intervals.

Local processes by default (a ``LocalCluster``), or an existing Dask cluster by its scheduler
address. Each task draws the study's population from its seed and simulates one slice of it
under one policy; counts are whole numbers summed per policy, so the result is identical for a
seed whatever the number of workers or partitions.

Scaling: by default the work (patients × policies) is cut into one equal share per worker, each
share into as few tasks as the policy boundaries allow (:func:`balanced_tasks`), handed out
largest first, so no worker idles at the end and tasks stay large; and the cluster
start (processes up, modules imported, the population drawn once per worker) is done and timed
before the study's clock starts (``timings["start_s"]`` beside ``timings["run_s"]``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from openitb.errors import InvalidInput
from openitb.sim.fleet import OUTCOMES, Draws, draw, simulate, study_days
from openitb.sim.study import Study

CONFIDENCE = 0.95
# The local cluster's dashboard is off, and the scheduler's own HTTP endpoint (which Dask starts
# even then, on 8787 by default, warning "Port 8787 is already in use" when another cluster has
# it) listens on a free port of the loopback interface: a fleet run prints no stray warning.
LOCAL_DASHBOARD = {"dashboard_address": None,
                   "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"}}


@dataclass(frozen=True)
class Rate:
    count: int
    per_1000_py: float
    low: float
    high: float


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    patient_years: float
    rates: dict[str, Rate]


def poisson_interval(count: int, exposure: float, scale: float = 1000.0) -> tuple[float, float]:
    """Exact (Garwood) 95 % interval of a Poisson rate: ``count`` events over ``exposure``."""
    from scipy.stats import chi2  # only the summary needs SciPy; the workers never import it

    a = 1.0 - CONFIDENCE
    low = chi2.ppf(a / 2, 2 * count) / 2 if count > 0 else 0.0
    high = chi2.ppf(1 - a / 2, 2 * count + 2) / 2
    return float(low / exposure * scale), float(high / exposure * scale)


@lru_cache(maxsize=4)
def _draws(study_json: str) -> Draws:
    # One draw per study per worker process, reused by every task it runs.
    return draw(Study.model_validate_json(study_json))


def run_slice(study_json: str, policy_index: int, start: int, stop: int) -> dict[str, int]:
    """One task: patients [start, stop) under one policy."""
    study = Study.model_validate_json(study_json)
    return simulate(_draws(study_json).take(start, stop), study, study.policies[policy_index])


def partitions(n: int, size: int) -> list[tuple[int, int]]:
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def balanced_tasks(n: int, policies: int, workers: int) -> list[tuple[int, int, int]]:
    """Tasks (policy, start, stop) that give every worker the same number of patient-policy
    runs in as few, as large tasks as possible: the policies' patients laid end to end, cut into
    ``workers`` equal stretches, and each stretch cut again where a policy ends. The engine is
    vectorised over patients, so a larger task costs less per patient: the shipped study (9
    policies, 2 workers) is 8 whole policies and one halved, where equal slices of every policy
    were 18 half policies."""
    total = n * policies
    cuts = sorted({round(j * total / workers) for j in range(workers + 1)}
                  | {p * n for p in range(policies + 1)})
    return [(a // n, a % n, b - (a // n) * n) for a, b in zip(cuts, cuts[1:], strict=False)
            if b > a]


def _warm(study_json: str) -> int:
    """Run once on each worker before the study's clock starts: imports and the population."""
    return len(_draws(study_json))


def summarise(study: Study, totals: list[dict[str, int]]) -> list[PolicyResult]:
    py = study.patients * study_days(study) / 365.25
    out = []
    for policy, counts in zip(study.policies, totals, strict=True):
        rates = {}
        for name in OUTCOMES:
            c = counts[name]
            low, high = poisson_interval(c, py)
            rates[name] = Rate(c, c / py * 1000.0, low, high)
        out.append(PolicyResult(policy.name, py, rates))
    return out


def run_study(study: Study, *, scheduler: str | None = None, workers: int | None = None,
              partition_size: int | None = None,
              progress: Callable[[int, int], None] | None = None,
              timings: dict[str, float] | None = None) -> list[PolicyResult]:
    """Run every policy of ``study`` on Dask; ``progress(done, total)`` after each task.

    ``partition_size`` patients per task, or None for balanced partitions (see
    :func:`balanced_partitions`). ``timings``, if given, receives ``start_s`` (cluster start and
    worker warm-up) and ``run_s`` (the study itself)."""
    from dask.distributed import Client, LocalCluster, as_completed

    if partition_size is not None and partition_size < 1:
        raise InvalidInput("partition_size", partition_size, "1 or more patients")
    if workers is not None and workers < 1:
        raise InvalidInput("workers", workers, "1 or more")
    t0 = time.perf_counter()
    cluster = None
    if scheduler is None:
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
            **LOCAL_DASHBOARD)
        client = Client(cluster)  # type: ignore[no-untyped-call]
    else:
        try:
            client = Client(scheduler, timeout=10)  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise InvalidInput("scheduler", scheduler, f"a reachable Dask scheduler ({exc})") from None
    try:
        text = study.model_dump_json()
        client.run(_warm, text)
        slots = sum(w.get("nthreads", 1) for w in
                    client.scheduler_info()["workers"].values()) or 1
        t1 = time.perf_counter()
        tasks = ([(p, a, b) for p in range(len(study.policies))
                  for a, b in partitions(study.patients, partition_size)]
                 if partition_size is not None
                 else balanced_tasks(study.patients, len(study.policies), slots))
        # Largest tasks first, so the last ones to finish are short.
        tasks.sort(key=lambda t: t[1] - t[2])
        futures = {client.submit(run_slice, text, p, a, b, pure=False): p for p, a, b in tasks}
        totals: list[dict[str, int]] = [dict.fromkeys(OUTCOMES, 0) for _ in study.policies]
        for done, future in enumerate(as_completed(futures), start=1):  # type: ignore[no-untyped-call]
            part: dict[str, Any] = future.result()
            for k in OUTCOMES:
                totals[futures[future]][k] += int(part[k])
            if progress:
                progress(done, len(tasks))
        if timings is not None:
            timings["start_s"] = t1 - t0
            timings["run_s"] = time.perf_counter() - t1
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()
    return summarise(study, totals)


def run_local(study: Study) -> list[PolicyResult]:
    """Every policy in this process, without Dask (tests, small studies, the reference)."""
    d = draw(study)
    return summarise(study, [simulate(d, study, p) for p in study.policies])


# Units of the Parquet columns (UCUM codes), in each field's metadata and the schema's.
PARQUET_UNITS = {
    "low_alarm_ml": "mL", "lead_days": "d", "count": "{events}", "patient_years": "a",
    "per_1000_patient_years": "{events}/(1000.a)", "ci95_low": "{events}/(1000.a)",
    "ci95_high": "{events}/(1000.a)",
}


def write_parquet(results: list[PolicyResult], path: Path, study: Study) -> None:
    """One row per policy and outcome. The policy's parameters are typed columns (float64, in
    the units above, not packed into its name), every numeric column carries its unit in the
    field metadata (``unit``) and the schema metadata (``openitb.units``, JSON), and the study
    itself (``openitb.study``, JSON) so the file says what produced it. Written atomically."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    policies = {p.name: p for p in study.policies}
    rows = [{"policy": r.policy, "low_alarm_ml": float(policies[r.policy].low_alarm_ml),
             "lead_days": float(policies[r.policy].lead_days), "outcome": k, "count": v.count,
             "patient_years": r.patient_years, "per_1000_patient_years": v.per_1000_py,
             "ci95_low": v.low, "ci95_high": v.high}
            for r in results for k, v in r.rates.items()]
    types = {"policy": pa.string(), "outcome": pa.string(), "count": pa.int64()}
    fields = [pa.field(name, types.get(name, pa.float64()), nullable=False,
                       metadata={"unit": PARQUET_UNITS[name]} if name in PARQUET_UNITS else None)
              for name in ("policy", "low_alarm_ml", "lead_days", "outcome", "count",
                           "patient_years", "per_1000_patient_years", "ci95_low", "ci95_high")]
    schema = pa.schema(fields, metadata={"openitb.units": json.dumps(PARQUET_UNITS),
                                         "openitb.study": study.model_dump_json()})
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
