"""``python -m mutls``: the same as the ``mutls`` command."""

from mutls.cli import main

raise SystemExit(main())
