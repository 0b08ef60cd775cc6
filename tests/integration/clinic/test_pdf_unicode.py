"""The wallet card and the therapy summary print every character of a patient's name: the text
extracted back from the PDF is the name, and every font in the file is embedded. Without a font
for a script, the name is shown transliterated with a note (never a black box)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pypdf import PdfReader

from openitb.clinic import queries, services
from openitb.clinic.demo import patient_ids
from openitb.clinic.facade import Clinic
from openitb.clinic.uow import Actor
from openitb.reports import fonts
from openitb.reports.pdf import therapy_summary_pdf, wallet_card_pdf

DOCTOR = Actor("dr.rivera", "physician", 1)
NAMES = {
    "Polish": ("Żaneta Łódź-Więckowska", "Józef Żółć +48 42 123 4567"),
    "Turkish": ("Şükrü Çağlayan İğdırlı", "Ayşe Öztürk (eşi) +90 312 555 0000"),
    "Greek": ("Αικατερίνη Παπαδοπούλου", "Γιώργος Παπαδόπουλος +30 21 0123 4567"),
    "Cyrillic": ("Ярослава Щербакова", "Пётр Щербаков +7 495 123 4567"),
}
JAPANESE = ("田中 さくら", "田中 健太 +81 3 1234 5678")


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _documents(clinic: Clinic, name: str, contact: str) -> Iterator[tuple[str, bytes]]:
    pid = patient_ids(clinic)["ITB-1003"]
    with clinic.uow(DOCTOR) as u:
        p = queries.patient_record(u, pid)["patient"]
        services.update_patient(u, pid, p.version, {"name": name, "emergency_contact": contact})
    with clinic.uow(DOCTOR) as u:
        record: dict[str, Any] = queries.patient_record(u, pid)
        yield "wallet card", wallet_card_pdf(record)
        yield "summary", therapy_summary_pdf(record, now=u.now)


def _text_and_fonts(pdf: bytes) -> tuple[str, list[Any]]:
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    used = []
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            used.append(font.get_object())
    return text, used


def _embedded(font: Any) -> bool:
    desc = font.get("/FontDescriptor")
    if desc is None and "/DescendantFonts" in font:
        desc = font["/DescendantFonts"][0].get_object().get("/FontDescriptor")
    desc = desc.get_object() if desc is not None else {}
    return any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3"))


@pytest.mark.parametrize("script", sorted(NAMES))
def test_names_print_and_extract_back(demo_clinic: Clinic, script: str) -> None:
    name, contact = NAMES[script]
    for what, pdf in _documents(demo_clinic, name, contact):
        text, used = _text_and_fonts(pdf)
        assert _squash(name) in _squash(text), (what, text[:300])
        assert _squash(contact) in _squash(text), what
        assert used and all(_embedded(f) for f in used), what
        assert fonts.TRANSLITERATED_NOTE[:30] not in text


def test_japanese_name_with_a_cjk_font(demo_clinic: Clinic) -> None:
    fonts.fonts.cache_clear()
    if fonts.fonts().cjk is None:
        pytest.skip("no CJK TrueType font on this system (e.g. Debian fonts-ipafont-gothic)")
    name, contact = JAPANESE
    for what, pdf in _documents(demo_clinic, name, contact):
        text, used = _text_and_fonts(pdf)
        assert _squash(name) in _squash(text), (what, text[:300])
        assert _squash(contact) in _squash(text), what
        assert all(_embedded(f) for f in used) and len(used) >= 3  # regular, bold, CJK


def test_without_a_cjk_font_the_name_is_transliterated_with_a_note(
        demo_clinic: Clinic, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "CJK_CANDIDATES", ())
    monkeypatch.delenv("OPENITB_CJK_FONT", raising=False)
    fonts.fonts.cache_clear()
    try:
        assert fonts.fonts().cjk is None
        for what, pdf in _documents(demo_clinic, *JAPANESE):
            text, _ = _text_and_fonts(pdf)
            assert "Tian" in text and "sakura" in text, (what, text[:300])
            assert _squash(fonts.TRANSLITERATED_NOTE) in _squash(text), what
            assert "田" not in text  # nothing the fonts cannot draw reaches the page
    finally:
        fonts.fonts.cache_clear()
