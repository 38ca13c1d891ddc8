"""Scaling out: worker processes on this machine (with a local MLflow server), Slurm job arrays through
submitit, and a study's progress read from its storage."""

from reproai.cluster._local import check_parallel_storage, local_tracking_server, run_workers
from reproai.cluster._slurm import SlurmOptions, Submission, submit
from reproai.cluster._status import StudyStatus, study_status

__all__ = [
    "run_workers",
    "local_tracking_server",
    "check_parallel_storage",
    "submit",
    "SlurmOptions",
    "Submission",
    "study_status",
    "StudyStatus",
]
