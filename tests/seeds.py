"""One seed for every random input of a test run: printed in the run's header and beside each failure.

Set TEST_SEED=N to repeat a run's inputs exactly.
"""

from __future__ import annotations

import os
import random

SEED = int(os.environ.get("TEST_SEED") or random.SystemRandom().randrange(2**32))
