"""Step 4: metrics per outer fold and across folds (with the corrected interval), read back from MLflow."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

common.analyze_nested(__doc__, "workshop-step-4", "search")
