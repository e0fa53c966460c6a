"""Terminal side of the ``kap-cds`` command line: one-line errors, input files, output for
people, progress. ``cds.cli`` wires these into the commands; nothing here knows about rules."""
