"""Scaling out: worker processes on this machine (with a local MLflow server), Slurm job arrays through
submitit, and a study's progress read from its storage."""

from reproai.cluster._local import check_parallel_storage, local_tracking_server, run_local_study, run_workers
from reproai.cluster._slurm import submit
from reproai.cluster._slurm_options import SlurmOptions, Submission
from reproai.cluster._status import StudyStatus, study_status

__all__ = [
    "SlurmOptions",
    "StudyStatus",
    "Submission",
    "check_parallel_storage",
    "local_tracking_server",
    "run_local_study",
    "run_workers",
    "study_status",
    "submit",
]
