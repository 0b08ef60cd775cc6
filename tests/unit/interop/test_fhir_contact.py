"""The emergency contact, free text in the clinic, becomes a valid FHIR contact whatever was
typed: the phone number goes to telecom, nothing is lost, no empty string is written."""

from __future__ import annotations

import re

from fhir.resources.patient import Patient
from hypothesis import given
from hypothesis import strategies as st

from openitb.interop.fhir import split_contact

_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF,
                              blacklist_categories=("Cs", "Cc")), min_size=1, max_size=80)


def test_name_relationship_and_phone() -> None:
    c = split_contact("Greta Weber (wife) +49 30 1234567")
    assert c["name"] == {"text": "Greta Weber"}
    assert c["telecom"] == [{"system": "phone", "value": "+49 30 1234567"}]
    assert c["relationship"][1] == {"text": "wife"}


@given(_text)
def test_any_contact_text_is_a_valid_fhir_contact(text: str) -> None:
    if not text.strip():
        return
    contact = split_contact(text)
    Patient.model_validate({"resourceType": "Patient", "contact": [contact]})
    kept = " ".join([contact.get("name", {}).get("text", "")]
                    + [r.get("text", "") for r in contact["relationship"][1:]]
                    + [t["value"] for t in contact.get("telecom", [])])
    digits = re.sub(r"\D", "", text)
    assert re.sub(r"\D", "", kept) == digits or sorted(re.sub(r"\D", "", kept)) == sorted(digits)
