"""Cat vs dog on the Oxford-IIIT Pet dataset: an ImageNet-pretrained EfficientNet-Lite0, fine-tuned in
two phases (a warm-up of the new head with the backbone frozen, then full fine-tuning).

Offline, point it at a local copy of the data and of the weights:
    reproai run configs/pets.py --set data.root=../shared/data \
        --set model.pretrained=../shared/weights/efficientnet_lite0_imagenet.pth
"""

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training

experiment = Experiment(
    name="pets-species",
    data=Data.oxford_pets(root="data", target="species", download=True),
    model=Model(backbone="efficientnet_lite0", pretrained=True, head=Head(hidden=256, dropout=0.2)),
    training=Training(
        batch_size=32,
        augment="flip",
        phases=[
            Phase("warmup", epochs=2, freeze_backbone=True, lr=1e-3, weight_decay=1e-5),
            Phase("finetune", epochs=3, lr=1e-4, weight_decay=1e-4, early_stopping_patience=2),
        ],
    ),
    cv=CrossValidation(outer_folds=1, inner_folds=1, test_size=0.25, dev_size=0.2),
    search=Search(metric="roc_auc"),
    seed=1729,
)
