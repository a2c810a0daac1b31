"""``python -m pkcard.tools.pkpin``."""

from pkcard.tools.pkpin.cli import main

raise SystemExit(main())
