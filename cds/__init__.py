"""kap-cds: a CDS Hooks 2.0 service for ketamine-assisted psychotherapy and esketamine."""

__version__ = "0.1.0"
