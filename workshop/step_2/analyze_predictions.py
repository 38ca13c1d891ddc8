"""Step 2: read the latest run's test predictions back from MLflow; log metrics and figures onto it."""

import argparse
import sys
from pathlib import Path

import mlflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402, F401  (puts the package on the path)

from reproai.analysis import (  # noqa: E402
    density_figure,
    roc_figure,
    table_metrics,  # noqa: E402
)

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--experiment", default="workshop-step-2")
args = parser.parse_args()
mlflow.set_experiment(args.experiment)
runs = mlflow.search_runs(
    experiment_names=[args.experiment],
    filter_string="attributes.run_name = 'fit'",
    order_by=["attributes.start_time DESC"],
    max_results=1,
)
run_id = runs["run_id"].iloc[0]
table = mlflow.load_table("predictions/test.json", run_ids=[run_id]).assign(repeat=0, outer_fold=0)
classes = ["cat", "dog"]
metrics = table_metrics(table, classes)
with mlflow.start_run(run_id=run_id):
    mlflow.log_metrics({f"analysis_test_{k}": v for k, v in metrics.items()})
    mlflow.log_figure(roc_figure(table, classes), "figures/roc.png")
    mlflow.log_figure(density_figure(table, classes), "figures/probability_density.png")
for name, value in metrics.items():
    print(f"{name:>18}: {value:.4f}")
print(f"logged onto run {run_id}: analysis_test_* metrics, figures/roc.png, figures/probability_density.png")
