import pytest
import torch

from reproai import ConfigError, Head, Model
from reproai.models._backbones import backbone_info
from reproai.models._network import create_model, recycle_model, set_backbone_frozen
from tests.conftest import WEIGHTS, needs_shared


@pytest.mark.parametrize("classes, outputs", [(2, 1), (10, 10)])
def test_small_cnn_outputs_one_logit_for_binary_and_k_otherwise(classes, outputs):
    model = create_model(Model(backbone="small_cnn", pretrained=False, head=Head(hidden=8, dropout=0.5)), classes)
    assert model(torch.zeros(4, 3, 8, 8)).shape == (4, outputs)


def test_unknown_backbone_names_close_matches():
    with pytest.raises(
        ConfigError, match=r"'efficientnet_lite00' is not a known backbone\. Did you mean .*'efficientnet_lite0'"
    ):
        create_model(Model(backbone="efficientnet_lite00", pretrained=False), 2)


def test_small_cnn_has_no_pretrained_weights():
    with pytest.raises(ConfigError, match=r"has no pretrained weights; set model\.pretrained=False"):
        create_model(Model(backbone="small_cnn", pretrained=True), 2)


def test_freezing_the_backbone():
    model = create_model(Model(backbone="small_cnn", pretrained=False), 2)
    set_backbone_frozen(model, True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_timm_backbone_info():
    info = backbone_info(Model(backbone="efficientnet_lite0"))
    assert info.image_size == 224 and len(info.mean) == 3
    assert backbone_info(Model(backbone="efficientnet_lite0", image_size=160)).image_size == 160


@needs_shared(WEIGHTS)
def test_local_pretrained_weights_are_loaded():
    state = torch.load(WEIGHTS, map_location="cpu")
    model = create_model(Model(backbone="efficientnet_lite0", pretrained=str(WEIGHTS)), 2)
    key = "conv_stem.weight"
    assert torch.equal(model.backbone.state_dict()[key], state[key])
    scratch = create_model(Model(backbone="efficientnet_lite0", pretrained=False), 2)
    assert not torch.equal(scratch.backbone.state_dict()[key], state[key])


def test_unloadable_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"nope": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match=r"model\.pretrained=.*bad\.pth.*cannot load these weights"):
        create_model(Model(backbone="efficientnet_lite0", pretrained=str(bad)), 2)


@needs_shared(WEIGHTS)
def test_pretrained_models_are_fresh_copies_and_do_not_move_the_seeded_generator():
    spec = Model(backbone="efficientnet_lite0", pretrained=str(WEIGHTS), head=Head(hidden=8))
    torch.manual_seed(0)
    a = create_model(spec, 2)  # builds the template
    torch.manual_seed(0)
    b = create_model(spec, 2)  # copies it
    assert torch.equal(a.head[1].weight, b.head[1].weight)  # the same head from the same seed
    with torch.no_grad():
        a.backbone.conv_stem.weight.add_(1.0)
    assert not torch.equal(a.backbone.conv_stem.weight, b.backbone.conv_stem.weight)  # no shared weights


def test_a_recycled_backbone_starts_like_a_fresh_copy(tmp_path):
    import timm

    weights = tmp_path / "weights.pth"
    torch.save(timm.create_model("efficientnet_lite0", num_classes=0).state_dict(), weights)
    spec = Model(backbone="efficientnet_lite0", pretrained=str(weights), head=Head(hidden=8))
    used = create_model(spec, 2).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(used.parameters(), lr=0.1)
    used(torch.randn(4, 3, 64, 64).contiguous(memory_format=torch.channels_last)).sum().backward()
    optimizer.step()
    set_backbone_frozen(used, True)
    used.eval()
    backbone = used.backbone
    recycle_model(used, spec)
    assert used.backbone is None  # the finished model cannot be used by mistake

    torch.manual_seed(0)
    recycled = create_model(spec, 2)
    assert recycled.backbone is backbone
    torch.manual_seed(0)
    fresh = create_model(spec, 2)  # the one spare is taken: a copy of the template
    assert fresh.backbone is not backbone
    for (key, a), b in zip(recycled.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b) and a.stride() == b.stride(), key  # weights, statistics and memory layout
    assert all(p.grad is None and p.requires_grad for p in recycled.parameters())
    assert all(m.training for m in recycled.modules())
