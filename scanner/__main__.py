"""``python -m scanner`` is the ``trustscan`` command."""

from scanner.cli.main import main

raise SystemExit(main())
