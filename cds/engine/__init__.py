"""The rules engine adapter (the only code that imports durable_rules)."""
