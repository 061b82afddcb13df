"""``python -m tinyslm`` is the same as the ``tinyslm`` command."""

import sys

from tinyslm.cli import main

sys.exit(main())
