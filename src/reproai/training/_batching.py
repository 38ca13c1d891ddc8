"""Batches for training and evaluation, from decoded images or from cached backbone features.

Images stay uint8 and in their stored NHWC layout until they reach the device (four times less to
copy, and NHWC is the channels-last layout convolutions prefer); a background thread gathers the
next batches into pinned memory while the model works on this one.
"""

from __future__ import annotations

import atexit
import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from reproai.data._source import ImageSet
from reproai.models._backbones import BackboneInfo
from reproai.training._augment import Transform

__all__ = ["Batch", "ImageBatches", "FeatureBatches", "normalize"]

Batch = tuple[torch.Tensor, torch.Tensor, np.ndarray]


def _prefetch(produce: Iterator[Batch], depth: int = 2) -> Iterator[Batch]:
    """Run ``produce`` one or two batches ahead in a thread (torch and NumPy release the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        """Hand ``item`` to the consumer; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in produce:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # hand the error to the consumer
            put(e)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    _LIVE.add((stop, thread))
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
        _LIVE.discard((stop, thread))


# Prefetch threads of iterations that an exception left unfinished (their generator not yet closed).
# A daemon thread still inside PyTorch when the interpreter shuts down aborts the process, so they
# are stopped and joined at exit.
_LIVE: set[tuple[threading.Event, threading.Thread]] = set()


@atexit.register
def _stop_prefetching() -> None:
    for stop, thread in list(_LIVE):
        stop.set()
        thread.join(timeout=30)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *, channels_last: bool) -> torch.Tensor:
    """uint8 images ``(n, h, w, 3)`` to the model's float input ``(n, 3, h, w)``: ``(x - 255 mean) /
    (255 std)`` per channel (``mean`` and ``std`` of shape ``(1, 3, 1, 1)``, already times 255), in
    channels-last memory or contiguous. Training, evaluation and the exported model all use this."""
    x = images.permute(0, 3, 1, 2)  # NHWC memory = channels-last
    x = (x.float() - mean) / std
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


class _Batches:
    """Batches over a subset, in a seeded order: ``batches(index, batch_size, augment=..., generator=...)``
    yields ``(x, y, idx)`` per batch. With a ``generator`` the order is a permutation drawn from it (the
    only place a fit's data order is drawn: runs repeat exactly from its seed); without, ``index``'s."""

    def __call__(
        self,
        index: np.ndarray,
        batch_size: int,
        *,
        augment: Transform | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[Batch]:
        order = np.asarray(index)
        if generator is not None:
            order = order[torch.randperm(len(order), generator=generator).numpy()]
        return self._batches(order, batch_size, augment)

    def _batches(self, order: np.ndarray, batch_size: int, augment: Transform | None) -> Iterator[Batch]:
        raise NotImplementedError


class ImageBatches(_Batches):
    """Normalised image batches on ``device``, optionally augmented and in channels-last layout."""

    def __init__(
        self,
        data: ImageSet,
        info: BackboneInfo,
        device: torch.device,
        *,
        channels_last: bool = False,
        prefetch: bool = True,
    ) -> None:
        self.images, self.labels = data.images, torch.from_numpy(np.asarray(data.labels))
        self.device, self.channels_last, self.prefetch = device, channels_last, prefetch
        self.mean = torch.tensor(info.mean, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(info.std, device=device).view(1, 3, 1, 1) * 255.0
        self.pin = device.type == "cuda"

    def _produce(self, order: np.ndarray, batch_size: int, augment: Transform | None) -> Iterator[Batch]:
        h, w, c = self.images.shape[1:]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if augment is None:
                # One copy, straight into (pinned) memory, in the stored NHWC layout: the device
                # turns it into NCHW for free, as a channels-last view.
                t = torch.empty((len(idx), h, w, c), dtype=torch.uint8, pin_memory=self.pin)
                np.take(self.images, idx, axis=0, out=t.numpy())
            else:
                t = torch.from_numpy(np.take(self.images, idx, axis=0)).permute(0, 3, 1, 2)
                t = torch.stack([augment(img) for img in t]).permute(0, 2, 3, 1)
                if self.pin:
                    t = t.pin_memory()
            yield t, self.labels[idx], idx

    def _batches(self, order: np.ndarray, batch_size: int, augment: Transform | None) -> Iterator[Batch]:
        # Augmentation draws from the global RNG: keep it in this thread, in order, for exact repeats.
        source = self._produce(order, batch_size, augment)
        if self.prefetch and augment is None:
            source = _prefetch(source, depth=3)
        for t, y, idx in source:
            x = normalize(t.to(self.device, non_blocking=True), self.mean, self.std, channels_last=self.channels_last)
            yield x, y.to(self.device, non_blocking=True), idx


class FeatureBatches(_Batches):
    """Batches of cached backbone features (for a phase whose backbone is frozen)."""

    def __init__(self, features: torch.Tensor, labels: np.ndarray, device: torch.device) -> None:
        self.features = features.to(device)
        self.labels = torch.from_numpy(np.asarray(labels)).to(device)

    def _batches(self, order: np.ndarray, batch_size: int, augment: Transform | None) -> Iterator[Batch]:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            t = torch.from_numpy(idx).to(self.features.device)
            yield self.features[t], self.labels[t], idx
