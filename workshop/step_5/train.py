"""Step 5: the configuration moved out of the code into workshop/step_5/config.py, with search-space
objects; it is loaded, validated, logged with the study, and re-runnable from the logged copy. This is
`reproai run` in miniature: the command-line options below only override fields of the config.

    python workshop/step_5/train.py --data-root ../shared/data \
        --pretrained ../shared/weights/efficientnet_lite0_imagenet.pth --limit 100 --folds 3 --trials 6
    python workshop/step_5/train.py --data-root ../shared/data --rerun RUN_ID   # re-execute a logged run
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from reproai import load_config  # noqa: E402
from reproai.nested import (
    rerun,  # noqa: E402
    run_experiment,  # noqa: E402
)

parser = common.parser(__doc__.splitlines()[0], folds=True, trials=True)
parser.add_argument("--config", default=str(Path(__file__).with_name("config.py")))
parser.add_argument("--rerun", metavar="RUN_ID", help="re-execute this logged run (study, fold, trial or fit)")
args = parser.parse_args()

if args.rerun:
    report = rerun(args.rerun, overrides=[f"data.root={args.data_root}"])
    print("\n".join(report.details))
    sys.exit(0 if report.identical else 1)

overrides = [
    f"data.root={args.data_root}",
    f"seed={args.seed}",
    f"model.image_size={args.image_size}",
    f"training.batch_size={args.batch_size}",
    f"training.phases.warmup.epochs={args.epochs[0]}",
    f"training.phases.finetune.epochs={args.epochs[1]}",
    f"cv.outer_folds={args.folds}",
    f"cv.inner_folds={args.folds}",
    f"search.n_trials={args.trials}",
]
if args.pretrained != "imagenet":
    overrides.append(f"model.pretrained={args.pretrained}")
if args.limit:
    overrides.append(f"data.limit={args.limit}")
loaded = load_config(args.config, overrides)  # validated before any work starts
result = run_experiment(loaded)  # logs the config file, the overrides and the resolved config
s = result.summary["roc_auc"]
print(f"study run {result.run_id}: test ROC AUC {s['mean']:.4f}, 95% CI [{s['ci_low']:.4f}, {s['ci_high']:.4f}]")
print(f"re-run it from what was logged: python workshop/step_5/train.py --rerun {result.run_id}")
