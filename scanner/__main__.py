"""``python -m scanner`` is the ``trustscan`` command."""

from scanner.cli import main

raise SystemExit(main())
