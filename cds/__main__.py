"""`python -m cds` is the `kap-cds` command."""

from cds.cli import main

raise SystemExit(main())
