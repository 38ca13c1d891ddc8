"""Step 1: metrics and figures from the prediction table that train.py wrote to results/step_1/."""

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402, F401  (puts the package on the path)

from reproai.analysis import (  # noqa: E402
    density_figure,
    roc_figure,
    table_metrics,  # noqa: E402
)

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--results", default="results/step_1", help="where train.py wrote its files")
out = Path(parser.parse_args().results)
table = pd.read_csv(out / "predictions_test.csv").assign(repeat=0, outer_fold=0)
classes = ["cat", "dog"]
for name, value in table_metrics(table, classes).items():
    print(f"{name:>18}: {value:.4f}")
roc_figure(table, classes).savefig(out / "roc.png")
density_figure(table, classes).savefig(out / "probability_density.png")
print(f"figures in {out}/")
