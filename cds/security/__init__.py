"""Who may call kap-cds (CDS Hooks JWT) and the limits every request is held to."""
