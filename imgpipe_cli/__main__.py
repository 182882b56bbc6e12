"""``python -m imgpipe_cli`` is the ``imgpipe`` console script."""

from imgpipe_cli.cli import main

raise SystemExit(main())
