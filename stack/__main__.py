"""``python -m stack``."""

from stack.cli import main

raise SystemExit(main())
