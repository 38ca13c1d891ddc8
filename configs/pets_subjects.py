"""Cat vs dog from a table of images with a subject per image: every split, outer and inner, keeps each
subject's images on one side, and `reproai analyze --by-group` reports per-subject results.

An offline example on the 400-image sample in ../shared (the paths below are relative to this file):
configs/data/pets_subjects.csv lists each image's file, species and a synthetic subject id (four
consecutive images of a breed make one "subject", as several photos of one animal, or several images
of one patient, would). With your own data, point Data.table at your CSV/TSV/Parquet file and name its
columns.

    reproai run configs/pets_subjects.py
    reproai analyze pets-subjects --by-group
"""

from pathlib import Path

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"  # ../shared beside the repository

experiment = Experiment(
    name="pets-subjects",
    data=Data.table(
        str(HERE / "data" / "pets_subjects.csv"),
        image="file",
        label="species",
        group="subject",
        root=str(SHARED / "data" / "oxford-iiit-pet" / "images"),  # the table's paths are relative to it
    ),
    model=Model(
        backbone="efficientnet_lite0",
        pretrained=str(SHARED / "weights" / "efficientnet_lite0_imagenet.pth"),
        head=Head(hidden=128, dropout=hp.float(0.0, 0.5)),
        image_size=160,
    ),
    training=Training(
        batch_size=32,
        # A frozen backbone without augmentation trains on features computed once: a CPU does this in minutes.
        phases=[Phase("head", epochs=4, freeze_backbone=True, lr=hp.float(1e-4, 1e-2, log=True))],
    ),
    cv=CrossValidation(outer_folds=3, inner_folds=2),
    search=Search(n_trials=4, metric="roc_auc"),
    seed=1729,
)
