from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = TESTS / "fixtures"

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
