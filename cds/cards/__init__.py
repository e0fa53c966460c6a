"""Turning fired rules into CDS Hooks cards (texts, suggestions, override reasons, trace)."""
