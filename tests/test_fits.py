"""The digest of a fit's trained weights, which `reproai rerun` compares."""

import torch
from torch import nn

from reproai.nested._fits import weights_sha256


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def test_equal_weights_give_equal_digests_and_any_change_shows():
    a, b = net(), net()
    a(torch.zeros(1, 3, 8, 8)), b(torch.zeros(1, 3, 8, 8))  # a training batch: BatchNorm statistics move
    digest = weights_sha256(a)
    assert weights_sha256(b) == digest and len(digest) == 64
    with torch.no_grad():
        b[0].weight.view(-1)[0] = torch.nextafter(b[0].weight.view(-1)[0], torch.tensor(1.0))  # one ulp
    assert weights_sha256(b) != digest
    b = net()
    b(torch.zeros(1, 3, 8, 8))
    b[1].num_batches_tracked += 1  # a 0-d integer buffer counts too
    assert weights_sha256(b) != digest
    assert weights_sha256(a.to(torch.bfloat16)) != digest  # dtypes without a NumPy twin are hashed as bytes
