"""``python -m skmonge demo``: the package's main job (see :mod:`skmonge.demo`)."""

import sys

from .demo import main

sys.exit(main())
