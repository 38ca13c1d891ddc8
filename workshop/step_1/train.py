"""Step 1: a plain training script. One split, hard-coded hyperparameters, results in local files.

    python workshop/step_1/train.py --data-root ../shared/data \
        --pretrained ../shared/weights/efficientnet_lite0_imagenet.pth --limit 100
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from reproai.training import FitOptions, Subsets, fit  # noqa: E402

# Hand-tuned hyperparameters, inside the code.
LR_WARMUP = 1e-3
LR_FINETUNE = 1e-4
HIDDEN = 256
DROPOUT = 0.2

args = common.parser(__doc__.splitlines()[0]).parse_args()
data, info = common.load_pets(args)

# One random split, 60% train / 20% dev / 20% test, drawn afresh every time the script runs.
order = np.random.permutation(len(data))
n_test, n_dev = len(data) // 5, len(data) // 5
test, dev, train = order[:n_test], order[n_test : n_test + n_dev], order[n_test + n_dev :]

result = fit(
    common.model(args, HIDDEN, DROPOUT),
    common.two_phases(args, lr_warmup=LR_WARMUP, lr_finetune=LR_FINETUNE),
    data,
    info,
    Subsets(train=train, dev=dev, test=test),
    options=FitOptions(seed=int(np.random.randint(1 << 30))),
)

out = Path("results/step_1")
out.mkdir(parents=True, exist_ok=True)
result.dev.table(data, result.threshold).to_csv(out / "predictions_dev.csv", index=False)
result.test.table(data, result.threshold).to_csv(out / "predictions_test.csv", index=False)
(out / "metrics.json").write_text(json.dumps({"test": result.test_metrics, "dev": result.dev_metrics}, indent=2))
print(f"test ROC AUC {result.test_metrics['roc_auc']:.4f}; predictions and metrics in {out}/")
