"""PDF documents with reportlab: the emergency wallet card (credit-card size, two panels) and a
one-page therapy summary. Both carry the pump model, drug, concentration, dose, next refill,
clinic contacts and the signs of withdrawal and overdose."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from openitb.clinic.queries import OVERDOSE_SIGNS, WITHDRAWAL_SIGNS

CLINIC_CONTACT = "OpenITB demo clinic, 24 h on-call: +00 000 000 000"
DISCLAIMER = "OpenITB: simulation and training software, not a medical device."


def _facts(record: dict[str, Any]) -> list[tuple[str, str]]:
    p, pump = record["patient"], record["pump"]
    rows = [("Patient", f"{p.name} (born {p.birth_date})")]
    if pump is not None:
        rows += [
            ("Pump", f"{pump.profile}, serial {pump.serial}, implanted {pump.implanted_at:%Y-%m-%d}"),
            ("Drug", f"baclofen intrathecal {pump.concentration:g} mcg/mL"),
            ("Dose", f"{pump.dose_per_day:.4g} mcg/day"),
            ("Next refill", f"{pump.refill_by:%Y-%m-%d}" if pump.refill_by else "not booked"),
            ("Catheter tip", pump.tip_level),
        ]
    else:
        rows.append(("Pump", "none implanted"))
    rows.append(("Clinic", CLINIC_CONTACT))
    if p.emergency_contact:
        rows.append(("Contact", p.emergency_contact))
    return rows


def _wrap(c: Canvas, text: str, x: float, y: float, width: float, size: float,
          leading: float) -> float:
    words, line = text.split(), ""
    for w in words:
        trial = f"{line} {w}".strip()
        if c.stringWidth(trial, "Helvetica", size) > width and line:
            c.drawString(x, y, line)
            y -= leading
            line = w
        else:
            line = trial
    if line:
        c.drawString(x, y, line)
        y -= leading
    return y


def wallet_card_pdf(record: dict[str, Any]) -> bytes:
    """Two credit-card panels (85.6 x 54 mm) on one page: front facts, back warning signs."""
    w, h = 85.6 * mm, 54 * mm
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(w, 2 * h + 6 * mm))
    c.setTitle(f"ITB emergency wallet card: {record['patient'].name}")
    top = 2 * h + 6 * mm
    c.rect(1, h + 6 * mm, w - 2, h - 1)
    c.setFont("Helvetica-Bold", 8)
    c.drawString(3 * mm, top - 5 * mm, "INTRATHECAL BACLOFEN PUMP: EMERGENCY CARD")
    y = top - 9 * mm
    for label, value in _facts(record):
        c.setFont("Helvetica-Bold", 6)
        c.drawString(3 * mm, y, f"{label}:")
        c.setFont("Helvetica", 6)
        y = _wrap(c, value, 19 * mm, y, w - 22 * mm, 6, 7)
    c.rect(1, 1, w - 2, h - 1)
    c.setFont("Helvetica-Bold", 7)
    c.drawString(3 * mm, h - 5 * mm, "Do not stop baclofen suddenly.")
    c.setFont("Helvetica", 6)
    y = _wrap(c, "Withdrawal signs: " + ", ".join(WITHDRAWAL_SIGNS)
              + ". Can progress over 24-72 h and be life-threatening: treat as an emergency.",
              3 * mm, h - 9 * mm, w - 6 * mm, 6, 7)
    y = _wrap(c, "Overdose signs: " + ", ".join(OVERDOSE_SIGNS) + ".", 3 * mm, y - 1,
              w - 6 * mm, 6, 7)
    y = _wrap(c, "MRI: the pump stops during the scan; it must be checked afterwards.",
              3 * mm, y - 1, w - 6 * mm, 6, 7)
    c.setFont("Helvetica", 5)
    c.drawString(3 * mm, 3 * mm, DISCLAIMER)
    c.showPage()
    c.save()
    return buf.getvalue()


def therapy_summary_pdf(record: dict[str, Any], *, now: datetime) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4)
    width, height = A4
    c.setTitle(f"ITB therapy summary: {record['patient'].name}")
    c.setFont("Helvetica-Bold", 16)
    c.drawString(20 * mm, height - 25 * mm, "Intrathecal baclofen therapy summary")
    c.setFont("Helvetica", 9)
    c.drawString(20 * mm, height - 31 * mm, f"Printed {now:%Y-%m-%d %H:%M} UTC. {DISCLAIMER}")
    y = height - 42 * mm
    for label, value in _facts(record):
        c.setFont("Helvetica-Bold", 11)
        c.drawString(20 * mm, y, f"{label}:")
        c.setFont("Helvetica", 11)
        y = _wrap(c, value, 55 * mm, y, width - 75 * mm, 11, 14)
    if record["risk"]:
        y -= 4
        c.setFont("Helvetica-Bold", 11)
        c.drawString(20 * mm, y, "Higher withdrawal risk:")
        c.setFont("Helvetica", 11)
        y = _wrap(c, "; ".join(record["risk"]), 70 * mm, y, width - 90 * mm, 11, 14)
    y -= 8
    c.setFont("Helvetica-Bold", 12)
    c.drawString(20 * mm, y, "Recent program changes")
    y -= 16
    c.setFont("Helvetica", 10)
    for prog in list(record["programs"])[-8:]:
        y = _wrap(c, f"{prog.at:%Y-%m-%d}: {prog.dose_per_day:.4g} mcg/day at "
                  f"{prog.concentration:g} mcg/mL ({prog.classification})"
                  + (f"; override: {prog.override_reason}" if prog.override_reason else ""),
                  20 * mm, y, width - 40 * mm, 10, 13)
    y -= 8
    c.setFont("Helvetica-Bold", 12)
    c.drawString(20 * mm, y, "Recent refills")
    y -= 16
    c.setFont("Helvetica", 10)
    for r in list(record["refills"])[-8:]:
        y = _wrap(c, f"{r.at:%Y-%m-%d}: withdrew {r.withdrawn_ml:.2f} mL (expected "
                  f"{r.expected_ml:.2f} mL), filled {r.volume_ml:g} mL at {r.concentration:g} "
                  "mcg/mL" + (" with a bridge bolus" if r.bridge else ""),
                  20 * mm, y, width - 40 * mm, 10, 13)
    y -= 8
    c.setFont("Helvetica-Bold", 12)
    c.drawString(20 * mm, y, "Warning signs")
    y -= 16
    c.setFont("Helvetica", 10)
    y = _wrap(c, "Withdrawal: " + ", ".join(WITHDRAWAL_SIGNS) + ".", 20 * mm, y,
              width - 40 * mm, 10, 13)
    _wrap(c, "Overdose: " + ", ".join(OVERDOSE_SIGNS) + ".", 20 * mm, y, width - 40 * mm, 10, 13)
    c.showPage()
    c.save()
    return buf.getvalue()
