"""The compliance report of a rule set (``kap-cds rules report``), the rule-set diff
(``kap-cds rules diff``) and the governance page (``GET /governance``).

One content builder (``content``) turns a loaded rule set, its fixture outcomes and the audit
figures into a small format-neutral document (``doc``); ``html`` and ``markdown`` render that
document, so the file a compliance officer signs and the page operators browse say the same thing.
"""
