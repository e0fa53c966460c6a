"""The web layer: thin routes over the domain (parse, call, serialize)."""
