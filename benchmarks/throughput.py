"""Images per second of reproai's fine-tuning loop against the model alone.

The loop: ``reproai.training.fit`` on the real Oxford-IIIT Pet sample (efficientnet_lite0, 224 px,
batch 32, the real pretrained weights), data read from the image cache, normalised on the device.
The model alone: forward + backward + optimiser step on the same images, already on the device as
normalised float tensors. Both with the same precision and memory layout. Goal: ratio >= 0.90.

    python benchmarks/throughput.py [--device cuda] [--precision bf16|fp32] [--channels-last true|false]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import Timer, pets_setup, report, require_shared  # noqa: E402


def model_alone(spec, training, data, info, n_epochs: int) -> float:
    """Images per second of forward + backward + step on device-resident normalised tensors."""
    from reproai.models import create_model
    from reproai.training import Runner, make_loss, resolve_device

    device = resolve_device(training.device)
    torch.manual_seed(0)
    model = create_model(spec, data.num_classes).to(device)
    runner = Runner(model, training, device, data.num_classes, spec)
    mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1) * 255
    std = torch.tensor(info.std, device=device).view(1, 3, 1, 1) * 255
    x_all = (torch.from_numpy(np.array(data.images)).permute(0, 3, 1, 2).to(device).float() - mean) / std
    # The same memory layout as the loop's (a permuted NHWC array would silently be channels-last).
    layout = torch.channels_last if runner.channels_last else torch.contiguous_format
    x_all = x_all.contiguous(memory_format=layout)
    y_all = torch.from_numpy(data.labels).to(device)
    loss_fn = make_loss("cross_entropy", num_classes=data.num_classes, train_labels=data.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bs = training.batch_size
    times = []
    model.train()
    for _ in range(n_epochs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        with Timer() as t:
            for start in range(0, len(y_all), bs):
                x, y = x_all[start : start + bs], y_all[start : start + bs]
                optimizer.zero_grad(set_to_none=True)
                with runner.autocast():
                    loss = loss_fn(runner.full(x), y)
                loss.backward()
                optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
        times.append(t.seconds)
    return len(y_all) / statistics.median(times[1:])


def reproai_loop(spec, training, data, info, n_epochs: int) -> float:
    """Images per second of reproai's training loop (the median epoch after the first)."""
    import dataclasses

    from reproai import Phase
    from reproai.training import FitHooks, FitOptions, Subsets, fit

    training = dataclasses.replace(training, phases=[Phase("finetune", epochs=n_epochs, lr=1e-4, scheduler=None)])
    result = fit(
        spec,
        training,
        data,
        info,
        Subsets(train=np.arange(len(data))),
        options=FitOptions(seed=0),
        hooks=FitHooks(progress=False),
    )
    return len(data) / statistics.median(h["epoch_seconds"] for h in result.history[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--channels-last", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per side (the first is warm-up)")
    parser.add_argument("--limit", type=int, default=None, help="images of the sample to use (default: all)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="repeat the sample N times per epoch (a GPU goes through 400 images in a blink)",
    )
    args = parser.parse_args()
    require_shared()

    from reproai import Training
    from reproai.training import resolve_device, resolve_precision

    cl = {"auto": "auto", "true": True, "false": False}[args.channels_last]
    training = Training(batch_size=args.batch_size, device=args.device, precision=args.precision, channels_last=cl)
    spec, data, info = pets_setup(args.size, args.limit)
    if args.repeat > 1:
        import dataclasses

        data = dataclasses.replace(
            data,
            ids=data.ids * args.repeat,
            labels=np.tile(data.labels, args.repeat),
            images=np.concatenate([np.asarray(data.images)] * args.repeat),
        )
    device = resolve_device(args.device)
    alone = model_alone(spec, training, data, info, args.epochs + 1)
    loop = reproai_loop(spec, training, data, info, args.epochs + 1)
    ratio = loop / alone
    dtype = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(
        f"device {name}, precision {dtype or 'fp32'}, channels_last {args.channels_last}, "
        f"{len(data)} images per epoch ({args.repeat}x the sample) at {args.size} px, batch {args.batch_size}"
    )
    print(f"model alone:   {alone:8.1f} images/s")
    print(f"reproai loop:  {loop:8.1f} images/s")
    print(f"ratio:         {ratio:8.3f}  (goal >= 0.90)")
    report(
        {
            "benchmark": "throughput",
            "ratio": round(ratio, 4),
            "goal": 0.90,
            "loop_images_per_s": round(loop, 2),
            "model_alone_images_per_s": round(alone, 2),
            "device": name,
            "precision": str(dtype or "fp32"),
            "channels_last": args.channels_last,
            "images": len(data),
            "size": args.size,
            "batch_size": args.batch_size,
        }
    )


if __name__ == "__main__":
    main()
