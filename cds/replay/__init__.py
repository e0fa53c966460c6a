"""Impact replay: what a candidate rule set would change on past requests, before it goes live.

``kap-cds replay --rules DIR`` evaluates each input twice, with the rule set the service runs
and with the candidate, and reports per rule the cards that would appear, disappear or change
severity. Inputs are the encrypted input archive when the site keeps one (``cds.audit.archive``),
otherwise the rule fixtures and the real third-party FHIR bundles.
"""
