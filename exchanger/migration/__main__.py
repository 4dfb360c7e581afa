"""``python -m exchanger.migration [--yes] …``: see :mod:`exchanger.migration.main`."""

import sys

from exchanger.migration.main import main

sys.exit(main())
