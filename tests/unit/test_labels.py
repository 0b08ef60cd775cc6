"""Every code the clinic defines has a human label, and no label shows an underscore."""
from openitb.clinic import labels
from openitb.clinic.accounts import ROLES
from openitb.clinic.queries import ALARM_MEANING
from openitb.clinic.services import MUSCLE_GROUPS, STAGES
from openitb.pumpservice.service import ALARM_KINDS


def test_every_code_has_a_label() -> None:
    for codes, table in ((STAGES, labels.STAGE), (MUSCLE_GROUPS, labels.MUSCLE_GROUP),
                         (ROLES, labels.ROLE), (ALARM_KINDS, labels.ALARM),
                         (tuple(ALARM_MEANING), labels.ALARM)):
        missing = [c for c in codes if c not in table]
        assert not missing, missing


def test_labels_are_words_not_codes() -> None:
    for table in labels.TABLES.values():
        for code, text in table.items():
            assert "_" not in text and text[:1].isupper(), (code, text)


def test_unknown_code_is_never_shown_raw() -> None:
    assert labels.human("some_new_code") == "some new code"
    assert labels.human("not_candidate") == "Not a candidate"
    assert labels.human("eri", "dashboard_kind") == "Battery replacement due"
    assert labels.human(None) == ""


def test_people_are_named_by_name_and_role_or_the_patient_they_care_for() -> None:
    assert labels.person("Nurse Jae Kim", "nurse") == "Nurse Jae Kim, nurse"
    assert labels.person("Claire Moreau", "patient", "Leo Moreau") == \
        "Claire Moreau, caregiver of Leo Moreau"
    assert labels.person("Leo Moreau", "patient", "Leo Moreau") == "Leo Moreau (patient)"
