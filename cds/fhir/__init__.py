"""FHIR data gathering: prefetch first, then the EHR's FHIR server; no model validation here."""
