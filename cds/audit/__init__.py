"""The audit store: one record per evaluation, every feedback item, nothing lost.

``open_store(settings)`` returns an ``AuditStore`` (the ``AuditSink`` of ``cds.pipeline_types``).
Records go to a local spool file first and reach the database (SQLite by default, PostgreSQL in
production) through a background writer; see ``spool.py`` and ``writer.py``.
"""

from cds.audit.queries import ReasonCount, RuleStats, export, rule_summary
from cds.audit.store import AuditStore, open_store

__all__ = ["AuditStore", "ReasonCount", "RuleStats", "export", "open_store", "rule_summary"]
