"""PDF documents with reportlab: the emergency wallet card (credit-card size, two panels) and a
one-page therapy summary. Both carry the pump model, drug, concentration, dose, next refill,
clinic contacts and the signs of withdrawal and overdose. Text is set in embedded Unicode fonts
(reports/fonts.py), so every character of a name prints, or is shown transliterated with a note."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from openitb.clinic.queries import OVERDOSE_SIGNS, WITHDRAWAL_SIGNS
from openitb.reports import fonts

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
    if p.phone:
        rows.append(("Patient's phone", p.phone))
    if p.emergency_contact:
        rows.append(("Contact", p.emergency_contact))
    return rows


class _Pen:
    """Draws with the embedded fonts and remembers whether anything was transliterated."""

    def __init__(self, c: Canvas) -> None:
        self.c = c
        self.size = 10.0
        self.bold = False
        self.transliterated = False

    def font(self, size: float, bold: bool = False) -> None:
        self.size, self.bold = size, bold

    def text(self, x: float, y: float, text: str) -> None:
        self.transliterated |= fonts.draw(self.c, x, y, text, self.size, self.bold)

    def wrap(self, text: str, x: float, y: float, width: float, leading: float) -> float:
        line = ""
        for w in text.split():
            trial = f"{line} {w}".strip()
            if fonts.width(trial, self.size, self.bold) > width and line:
                self.text(x, y, line)
                y -= leading
                line = w
            else:
                line = trial
        if line:
            self.text(x, y, line)
            y -= leading
        return y


def wallet_card_pdf(record: dict[str, Any]) -> bytes:
    """Two credit-card panels (85.6 x 54 mm) on one page: front facts, back warning signs."""
    w, h = 85.6 * mm, 54 * mm
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(w, 2 * h + 6 * mm), initialFontName=fonts.fonts().regular)
    pen = _Pen(c)
    c.setTitle(f"ITB emergency wallet card: {record['patient'].name}")
    top = 2 * h + 6 * mm
    c.rect(1, h + 6 * mm, w - 2, h - 1)
    pen.font(7.5, bold=True)
    pen.text(3 * mm, top - 5 * mm, "INTRATHECAL BACLOFEN PUMP: EMERGENCY CARD")
    y = top - 9 * mm
    for label, value in _facts(record):
        pen.font(6, bold=True)
        pen.text(3 * mm, y, f"{label}:")
        pen.font(6)
        y = pen.wrap(value, 19 * mm, y, w - 22 * mm, 7)
    c.rect(1, 1, w - 2, h - 1)
    pen.font(7, bold=True)
    pen.text(3 * mm, h - 5 * mm, "Do not stop baclofen suddenly.")
    pen.font(6)
    y = pen.wrap("Withdrawal signs: " + ", ".join(WITHDRAWAL_SIGNS)
                 + ". Can progress over 24-72 h and be life-threatening: treat as an emergency.",
                 3 * mm, h - 9 * mm, w - 6 * mm, 7)
    y = pen.wrap("Overdose signs: " + ", ".join(OVERDOSE_SIGNS) + ".", 3 * mm, y - 1,
                 w - 6 * mm, 7)
    y = pen.wrap("MRI: the pump stops during the scan; it must be checked afterwards.",
                 3 * mm, y - 1, w - 6 * mm, 7)
    pen.font(4.5)
    if pen.transliterated:
        pen.wrap(fonts.TRANSLITERATED_NOTE, 3 * mm, y - 1, w - 6 * mm, 5)
    pen.text(3 * mm, 3 * mm, DISCLAIMER)
    c.showPage()
    c.save()
    return buf.getvalue()


def therapy_summary_pdf(record: dict[str, Any], *, now: datetime) -> bytes:
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=A4, initialFontName=fonts.fonts().regular)
    pen = _Pen(c)
    width, height = A4
    c.setTitle(f"ITB therapy summary: {record['patient'].name}")
    pen.font(16, bold=True)
    pen.text(20 * mm, height - 25 * mm, "Intrathecal baclofen therapy summary")
    pen.font(9)
    pen.text(20 * mm, height - 31 * mm, f"Printed {now:%Y-%m-%d %H:%M} UTC. {DISCLAIMER}")
    y = height - 42 * mm
    for label, value in _facts(record):
        pen.font(11, bold=True)
        pen.text(20 * mm, y, f"{label}:")
        pen.font(11)
        y = pen.wrap(value, 55 * mm, y, width - 75 * mm, 14)
    if record["risk"]:
        y -= 4
        pen.font(11, bold=True)
        pen.text(20 * mm, y, "Higher withdrawal risk:")
        pen.font(11)
        y = pen.wrap("; ".join(record["risk"]), 70 * mm, y, width - 90 * mm, 14)

    def heading(title: str, y: float) -> float:
        pen.font(12, bold=True)
        pen.text(20 * mm, y - 8, title)
        pen.font(10)
        return y - 24

    y = heading("Recent program changes", y)
    for prog in list(record["programs"])[-8:]:
        y = pen.wrap(f"{prog.at:%Y-%m-%d}: {prog.dose_per_day:.4g} mcg/day at "
                     f"{prog.concentration:g} mcg/mL ({prog.classification})"
                     + (f"; override: {prog.override_reason}" if prog.override_reason else ""),
                     20 * mm, y, width - 40 * mm, 13)
    y = heading("Recent refills", y)
    for r in list(record["refills"])[-8:]:
        y = pen.wrap(f"{r.at:%Y-%m-%d}: withdrew {r.withdrawn_ml:.2f} mL (expected "
                     f"{r.expected_ml:.2f} mL), filled {r.volume_ml:g} mL at {r.concentration:g} "
                     "mcg/mL" + (" with a bridge bolus" if r.bridge else ""),
                     20 * mm, y, width - 40 * mm, 13)
    y = heading("Warning signs", y)
    y = pen.wrap("Withdrawal: " + ", ".join(WITHDRAWAL_SIGNS) + ".", 20 * mm, y,
                 width - 40 * mm, 13)
    y = pen.wrap("Overdose: " + ", ".join(OVERDOSE_SIGNS) + ".", 20 * mm, y, width - 40 * mm, 13)
    if pen.transliterated:
        pen.font(9)
        pen.wrap(fonts.TRANSLITERATED_NOTE, 20 * mm, y - 8, width - 40 * mm, 12)
    c.showPage()
    c.save()
    return buf.getvalue()
