"""One fine-tuning fit, the seed workshop's way and reproai's, side by side, each in a process of its own.

The seed workshop's step 2 (github.com/eryl/aida-reporoducible-ai, step_2/train.py), reproduced here in
a plain script of this file's own: the 400-image Oxford-IIIT Pet sample split 324 / 36 / 40 (train /
dev / test, stratified); torchvision's DenseNet121 without downloaded weights (offline) under a head
Linear(1024, 1024) -> ReLU -> Dropout(0.5) -> Linear(1024, 1); every image read from its file each time
with ``read_image`` and transformed on the fly (AutoAugment, then the weights' Resize(256) + CenterCrop(224)
+ Normalize), in a ``DataLoader`` (batch 32, shuffled, the last batch dropped, 6 workers as the workshop
has them); BCE; one warm-up epoch of the head alone (AdamW, lr 3e-3, weight decay 1e-5), then one epoch of
the whole network (lr 1e-6); after each epoch a dev pass, a copy of the best model and its state dict
saved; an MLflow metric per training step; at the end, dev and test passes (batch 16), Youden's threshold
on dev, the prediction tables logged.

reproai's same fit: ``reproai run`` of the same model (timm's densenet121, the same head sizes and
dropout), data, split sizes, augmentation (AutoAugment), batch size, phases, optimiser, learning rates
and weight decays (``outer_folds=1, inner_folds=1``), with its defaults otherwise (images decoded once
into its cache, channels-last, evaluation under inference mode); also with ``grad_checkpointing`` and
with ``compile``.

Printed: each side's whole-process wall time, its warm-up and fine-tuning epoch (each with its dev pass),
its peak resident memory, and the ratios; the fine-tuning epoch's achieved FLOP/s (the model's FLOPs from
``torch.utils.flop_counter``) as a fraction of this machine's measured matrix-multiply peak. Goals:
speedup (the workshop's wall time over reproai's) >= 2, memory_ratio (reproai's peak over the workshop's)
<= 0.7. The last line is JSON.

    python benchmarks/seed_fit.py [--variants seed,reproai,checkpointing,compile] [--limit N] [--workers 6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PETS_ROOT, REPO, report  # noqa: E402

SEED = 1729
HIDDEN, DROPOUT = 1024, 0.5
WARMUP = {"lr": 3e-3, "weight_decay": 1e-5}
FINETUNE = {"lr": 1e-6, "weight_decay": 1e-5}
VARIANTS = {
    "seed": "the workshop's script",
    "reproai": "reproai",
    "checkpointing": "reproai, grad_checkpointing=True",
    "compile": "reproai, compile=True",
}


def _peak_rss_mib() -> dict[str, float]:
    return {
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "peak_rss_children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }


# -- the workshop's fit, as a plain script ---------------------------------------------------------------


def seed_fit(args: argparse.Namespace, out: dict) -> None:
    from copy import deepcopy

    import mlflow
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.metrics import roc_auc_score, roc_curve
    from sklearn.model_selection import train_test_split
    from torch import nn
    from torch.utils.data import DataLoader, Dataset
    from torchvision.io import ImageReadMode, read_image
    from torchvision.models.densenet import DenseNet121_Weights, densenet121
    from torchvision.transforms.v2 import AutoAugment

    torch.manual_seed(SEED)
    folder = Path(args.data) / "oxford-iiit-pet" / "images"
    files = sorted(folder.glob("*.jpg"))[: args.limit]
    labels = ["cat" if f.name[0].isupper() else "dog" for f in files]  # the dataset's convention
    index = np.arange(len(files))
    rest, test = train_test_split(index, test_size=0.1, stratify=labels, random_state=SEED)
    train, dev = train_test_split(rest, test_size=0.1, stratify=[labels[i] for i in rest], random_state=SEED)
    out["split"] = [len(train), len(dev), len(test)]

    class Images(Dataset):
        def __init__(self, positions, transform):
            self.positions, self.transform = list(positions), transform

        def __len__(self):
            return len(self.positions)

        def __getitem__(self, k):
            i = self.positions[k]
            image = self.transform(read_image(str(files[i]), mode=ImageReadMode.RGB))
            return image, torch.tensor([1.0 if labels[i] == "cat" else 0.0])

    weights = DenseNet121_Weights.DEFAULT  # its transforms only: the weights themselves are not downloaded
    model = densenet121(weights=None)
    model.classifier = nn.Sequential(
        nn.Linear(model.classifier.in_features, HIDDEN), nn.ReLU(), nn.Dropout(DROPOUT), nn.Linear(HIDDEN, 1)
    )
    train_loader = DataLoader(
        Images(train, nn.Sequential(AutoAugment(), weights.transforms())),
        batch_size=32,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
    )
    dev_loader = DataLoader(Images(dev, weights.transforms()), batch_size=32, num_workers=args.workers)
    loss_fn = nn.BCEWithLogitsLoss()

    def evaluate(network, loader):
        network.eval()
        logits, ys, total = [], [], 0.0
        with torch.no_grad():
            for x, y in loader:
                z = network(x)
                total += loss_fn(z, y).item() * len(x)
                logits.append(z.numpy().ravel())
                ys.append(y.numpy().ravel())
        z, y = np.concatenate(logits), np.concatenate(ys)
        return {"roc_auc": roc_auc_score(y, z), "loss": total / len(y), "logits": z, "labels": y}

    step = 0

    def train_phase(network, optimizer):
        nonlocal step
        best, best_auc = network, float("-inf")
        network.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(network(x), y)
            loss.backward()
            optimizer.step()
            mlflow.log_metric("training_loss", loss.item(), step=step)  # a synchronous request per step
            step += 1
        result = evaluate(network, dev_loader)
        mlflow.log_metrics({"dev_loss": result["loss"], "dev_roc_auc": result["roc_auc"]}, step=step)
        if result["roc_auc"] > best_auc:
            best = deepcopy(network)
            Path("models").mkdir(exist_ok=True)
            torch.save(network.state_dict(), "models/best_model.pth")
        return best

    mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    mlflow.set_experiment("seed-step-2")
    with mlflow.start_run():
        mlflow.log_params(
            {"hidden_dim": HIDDEN, "dropout_rate": DROPOUT, **{f"warmup_{k}": v for k, v in WARMUP.items()}, **FINETUNE}
        )
        start = time.perf_counter()
        with mlflow.start_run(nested=True):
            for p in model.parameters():
                p.requires_grad = False
            head = list(model.classifier.parameters())
            for p in head:
                p.requires_grad = True
            model = train_phase(model, torch.optim.AdamW(head, **WARMUP))
        out["warmup_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        with mlflow.start_run(nested=True):
            for p in model.parameters():
                p.requires_grad = True
            model = train_phase(model, torch.optim.AdamW(model.parameters(), **FINETUNE))
        out["finetune_seconds"] = time.perf_counter() - start
        out["finetune_images"] = (len(train) // 32) * 32  # the last batch is dropped
        dev_result = evaluate(model, DataLoader(Images(dev, weights.transforms()), batch_size=16))
        fpr, tpr, thresholds = roc_curve(dev_result["labels"], dev_result["logits"])
        threshold = thresholds[int(np.argmax(tpr - fpr))]
        test_result = evaluate(model, DataLoader(Images(test, weights.transforms()), batch_size=16))
        for tag, result in (("dev", dev_result), ("test", test_result)):
            table = pd.DataFrame(
                {
                    "labels": result["labels"],
                    "logits": result["logits"],
                    "class_predictions": result["logits"] >= threshold,
                }
            )
            mlflow.log_table(table, f"{tag}_predictions.json")
        out["test_roc_auc"] = test_result["roc_auc"]


# -- reproai's same fit ----------------------------------------------------------------------------------------

CONFIG = """
from reproai import Component, CrossValidation, Data, Experiment, Head, Model, Phase, Training

experiment = Experiment(
    name="seed-fit",
    data=Data.oxford_pets(root={root!r}, download=False, limit={limit}),
    model=Model(
        backbone="densenet121", pretrained=False, head=Head(hidden={hidden}, dropout={dropout}), image_size=224
    ),
    training=Training(
        batch_size=32,
        augment=Component("AutoAugment"),
        grad_checkpointing={checkpointing},
        compile={compile},
        phases=[
            Phase("warmup", epochs=1, freeze_backbone=True, lr={warmup_lr}, weight_decay={warmup_wd}, scheduler=None),
            Phase("finetune", epochs=1, lr={lr}, weight_decay={wd}, scheduler=None, early_stopping_patience=3),
        ],
    ),
    cv=CrossValidation(outer_folds=1, inner_folds=1, test_size=0.1, dev_size=0.1, final_model=False),
    seed={seed},
)
"""


def reproai_fit(args: argparse.Namespace, out: dict, variant: str) -> None:
    import warnings

    from mlflow import MlflowClient

    from reproai.cli import main

    config = Path("config.py")
    config.write_text(CONFIG.format(
        root=str(args.data), limit=args.limit, hidden=HIDDEN, dropout=DROPOUT, seed=SEED,
        checkpointing=variant == "checkpointing", compile=variant == "compile",
        warmup_lr=WARMUP["lr"], warmup_wd=WARMUP["weight_decay"], lr=FINETUNE["lr"], wd=FINETUNE["weight_decay"],
    ))  # fmt: skip
    os.environ["REPROAI_CACHE_DIR"] = str(Path("cache").resolve())  # a cold image cache: decoding is counted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the sample's two unannotated images, labelled from their names
        assert main(["run", str(config), "--quiet", "--no-summary"]) == 0
    client = MlflowClient("sqlite:///mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("seed-fit").experiment_id], max_results=100)
    for run in runs:
        level = run.data.tags["reproai.level"]
        if level == "phase":
            out[f"{run.data.tags['reproai.phase']}_seconds"] = run.data.metrics["epoch_seconds"]
        elif level == "fit":
            out["test_roc_auc"] = run.data.metrics["test_roc_auc"]
            out["fit_peak_rss_mib"] = run.data.metrics.get("peak_rss_mib")
            out["compile_seconds"] = run.data.metrics.get("compile_seconds")
            out["split"] = [int(run.data.params[f"n_{k}"]) for k in ("train", "dev", "test")]
    out["finetune_images"] = out["split"][0]


def flops(args: argparse.Namespace, out: dict) -> None:
    """The FLOPs of one training step of DenseNet121 (forward and backward) per image, and the machine's
    measured float32 matrix-multiply peak."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from torchvision.models import densenet121

    model = densenet121(weights=None).train()
    x = torch.randn(8, 3, 224, 224)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    out["train_flops_per_image"] = counter.get_total_flops() / len(x)
    n, best = 2048, 0.0
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    for _ in range(10):
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - start))
    out["matmul_peak_flops"] = best
    out["threads"] = torch.get_num_threads()


def child(args: argparse.Namespace) -> None:
    out: dict = {}
    os.chdir(args.folder)
    if args.child == "seed":
        seed_fit(args, out)
    elif args.child == "flops":
        flops(args, out)
    else:
        reproai_fit(args, out, args.child)
    out.update(_peak_rss_mib())
    Path(args.out).write_text(json.dumps(out))


def run_child(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--folder",
            tmp,
            "--out",
            str(result),
            "--data",
            str(args.data),
            "--workers",
            str(args.workers),
        ]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"{name} failed:\n{done.stderr[-4000:]}")
        return {**json.loads(result.read_text()), "wall_seconds": wall}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="seed,reproai,checkpointing,compile")
    p.add_argument("--limit", type=int, default=None, help="fewer images (default: the whole sample, 400)")
    p.add_argument("--workers", type=int, default=6, help="the workshop's DataLoader workers (default 6, as it has)")
    p.add_argument("--data", default=str(PETS_ROOT))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if not (Path(args.data) / "oxford-iiit-pet").is_dir():
        sys.exit(f"This benchmark needs the real sample under {args.data} (or set --data).")
    machine = run_child("flops", args)
    results = {}
    for name in args.variants.split(","):
        results[name] = run_child(name, args)
        r = results[name]
        print(
            f"{VARIANTS[name]:<34} wall {r['wall_seconds']:7.1f} s, warm-up {r['warmup_seconds']:6.1f} s, "
            f"fine-tuning {r['finetune_seconds']:6.1f} s, peak memory {r['peak_rss_mib']:7.0f} MiB "
            f"(workers {r['peak_rss_children_mib']:.0f}), test ROC AUC {r['test_roc_auc']:.3f}, split {r['split']}"
            + (f", compiling {r['compile_seconds']:.0f} s" if r.get("compile_seconds") else ""),
            flush=True,
        )
    peak = machine["matmul_peak_flops"]
    figures: dict = {"matmul_peak_gflops": peak / 1e9, "train_gflops_per_image": machine["train_flops_per_image"] / 1e9}
    print(
        f"\nmatrix-multiply peak {peak / 1e9:.1f} GFLOP/s ({machine['threads']} threads); a training step of "
        f"DenseNet121 costs {machine['train_flops_per_image'] / 1e9:.2f} GFLOP per 224 px image"
    )
    for name, r in results.items():
        achieved = machine["train_flops_per_image"] * r["finetune_images"] / r["finetune_seconds"]
        r["finetune_fraction_of_peak"] = achieved / peak
        print(
            f"{VARIANTS[name]:<34} fine-tuning epoch: {achieved / 1e9:5.1f} GFLOP/s, {achieved / peak:.0%} of the peak"
        )
    if "seed" in results:
        seed = results["seed"]
        for name, r in results.items():
            if name == "seed":
                continue
            speedup, memory = seed["wall_seconds"] / r["wall_seconds"], r["peak_rss_mib"] / seed["peak_rss_mib"]
            print(
                f"{VARIANTS[name]:<34} speedup {speedup:.2f}x (goal >= 2), memory ratio {memory:.2f} (goal <= 0.7),"
                f" warm-up {seed['warmup_seconds'] / r['warmup_seconds']:.2f}x, fine-tuning "
                f"{seed['finetune_seconds'] / r['finetune_seconds']:.2f}x"
            )
            figures[name] = {"speedup": speedup, "memory_ratio": memory}
        if "reproai" in results:
            figures["speedup"] = figures["reproai"]["speedup"]
            figures["memory_ratio"] = figures["reproai"]["memory_ratio"]
    figures["runs"] = results
    report({**figures, "goal": {"speedup": ">= 2", "memory_ratio": "<= 0.7"}})


if __name__ == "__main__":
    main()
