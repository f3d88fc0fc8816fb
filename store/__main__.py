"""`python -m store check --db DB` (see store.check)."""

import sys

from store.check import main

if len(sys.argv) < 2 or sys.argv[1] != "check":
    print("usage: python -m store check --db DB", file=sys.stderr)
    raise SystemExit(2)
raise SystemExit(main(sys.argv[2:]))
