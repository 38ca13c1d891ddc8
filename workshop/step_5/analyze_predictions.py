"""Step 5: `reproai analyze` on the step's latest study: metrics with intervals, figures and report.html."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402, F401  (puts the package on the path)

from reproai.analysis import analyze  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--experiment", default="workshop-step-5")
parser.add_argument("--out", default="results/step_5")
args = parser.parse_args()
result = analyze(args.experiment, out=args.out)
print(result.summary[["mean", "std", "ci_low", "ci_high"]].to_string(float_format=lambda v: f"{v:.4f}"))
print(f"report: {result.out_dir / 'report.html'}; the same numbers, figures and report are logged on the study run")
