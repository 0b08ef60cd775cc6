"""`itb demo`: a guided terminal walk through the dose math on one worked example patient."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from openitb.devices import default_catheter, get_pump
from openitb.drugs import Context, Origin, Population, load_library
from openitb.therapy.guardrails import check_change, check_prescription_dose
from openitb.therapy.prescription import Flex, FlexStep, describe_segments, validate_for_pump
from openitb.therapy.refill import bridge_bolus, check_discrepancy, priming_bolus, project_refill
from openitb.therapy.screening import ScreeningDose, evaluate_screening, screening_schedule
from openitb.units import McgPerDay, McgPerMl, Micrograms, Milliliters

app = typer.Typer(help="A guided walk through the calculations on an example patient.")

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@app.callback(invoke_without_command=True)
def demo() -> None:
    """Screening, first dose, implant priming, a flex program, refill dates, a concentration change."""
    con = Console()
    con.print(Panel.fit(
        "[bold]OpenITB demo[/bold]: one worked patient, every number computed by the dose math.\n"
        "Simulation, engineering verification, training and research only. "
        "Not a cleared medical device.",
    ))
    con.print("\n[bold]Patient[/bold]: adult, spinal cord injury at T4 (spinal origin; "
              "high withdrawal risk), severe lower-limb spasticity.\n")

    con.rule("1. Screening trial (50, then 75, then 100 mcg, 24 h apart)")
    for when, dose in screening_schedule(START):
        con.print(f"  {when:%Y-%m-%d %H:%M} UTC  bolus {dose}")
    outcome = evaluate_screening([
        ScreeningDose(Micrograms(50), [3, 3, 2], [3, 2.5, 2], effect_hours=4),
        ScreeningDose(Micrograms(75), [3, 3, 2], [1.5, 1.5, 1], effect_hours=6),
    ])
    con.print(f"  -> {outcome.reason}")
    assert outcome.first_dose is not None
    first = outcome.first_dose.dose_per_day

    con.rule("2. Implant: itb-20 pump, 90 cm catheter, priming bolus")
    pump = get_pump("itb-20")
    prime = priming_bolus(pump, default_catheter(), 90)
    con.print(f"  path volume {prime.priming_volume} (pump {pump.internal_volume} + catheter "
              f"90 cm x 0.0026 mL/cm), priming takes {prime.priming_duration.value * 60:.0f} min")

    con.rule("3. Titration: each change checked against the label's limits")
    dose = first
    for proposed in (McgPerDay(first.value * 1.25), McgPerDay(first.value * 1.25 * 1.6)):
        c = check_change(dose, proposed, Origin.SPINAL, Context.TITRATION)
        colour = {"within": "green", "above_absolute": "red"}.get(c.classification.value, "yellow")
        con.print(f"  {dose} -> {proposed}: [{colour}]{c.classification.value}[/{colour}]: {c.reason}")
        if c.classification.value == "within":
            dose = proposed

    con.rule("4. A flex program: more overnight, when spasms wake the patient")
    conc = McgPerMl(500)
    flex = Flex((FlexStep(0, McgPerDay(240)), FlexStep(6 * 3600, McgPerDay(150)),
                 FlexStep(22 * 3600, McgPerDay(240))))
    validate_for_pump(flex, pump, conc)
    cls, reason = check_prescription_dose(flex, Population.SPINAL)
    t = Table("start", "end", "mcg/h", "mcg/day rate", "dose in step (mcg)")
    for row in describe_segments(flex):
        t.add_row(row["start"], row["end"], f"{row['mcg_per_hour']:.2f}",
                  f"{row['mcg_per_day']:g}", f"{row['dose_mcg']:.1f}")
    con.print(t)
    con.print(f"  daily dose {flex.daily_dose()}: {reason}")

    con.rule("5. Refill projection at 500 mcg/mL, 20 mL")
    p = project_refill(flex, pump, Milliliters(20), conc, START)
    con.print(f"  {p.flow_per_day.value:.3f} mL/day; low-reservoir alarm ({p.low_alarm}) on "
              f"{p.low_alarm_at:%Y-%m-%d %H:%M} (day {p.days_to_low_alarm:.1f}); empty on "
              f"{p.empty_at:%Y-%m-%d %H:%M} (day {p.days_to_empty:.1f})")
    con.print(f"  [bold]refill by {p.refill_by:%Y-%m-%d}[/bold] ({p.refill_by_reason})")

    con.rule("6. The refill: withdrawn volume against the pump's estimate")
    d = check_discrepancy(pump, Milliliters(2.4), Milliliters(0.9))
    flag = "[red]FLAGGED[/red]" if d.flagged else "ok"
    con.print(f"  expected 2.4 mL, withdrawn 0.9 mL: {d.difference_ml:+.1f} mL, threshold "
              f"{d.threshold}: {flag}")
    for cause in d.possible_causes:
        con.print(f"    - {cause}")

    con.rule("7. Concentration change 500 -> 2000 mcg/mL: the bridge bolus")
    b = bridge_bolus(pump, default_catheter(), 90, conc, McgPerMl(2000),
                     McgPerDay(flex.daily_dose().value))
    con.print(f"  {b.path_volume} of old drug in the path; bridge: {b.bridge_volume} at the old "
              f"flow over {b.bridge_duration.value:.1f} h ({b.bridge_dose})")
    con.print(f"  without it the patient would get {b.unbridged_dose_error_pct:+.0f} % of the dose "
              f"for {b.unbridged_duration.value:.0f} h")
    lib = load_library()
    con.print(f"\nDrug library: {', '.join(p.name for p in lib.products)}. "
              "Try: itb calc --help")
