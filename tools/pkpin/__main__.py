"""``python -m tools.pkpin``."""

from tools.pkpin.cli import main

raise SystemExit(main())
