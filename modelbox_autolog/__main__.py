"""``python -m modelbox_autolog`` is the ``modelbox`` command."""

from .cli import main

raise SystemExit(main())
