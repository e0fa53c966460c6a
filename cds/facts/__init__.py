"""Facts: plain values derived from FHIR R4 by pure functions, for the rules to match on.

Every fact is a flat dict with ``t`` (its type, see ``schema.FACT_TYPES``) and the fields that
type declares. Times are relative to the evaluation time T0 (hours/days as numbers), so rules
compare numbers, never dates; a display copy of each date travels with it for card texts.
"""
