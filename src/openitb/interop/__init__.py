"""Interoperability: FHIR export and the iCalendar refill feed."""
