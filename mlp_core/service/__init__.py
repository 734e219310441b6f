"""The training service: runs queued per device, trained by workers, written to a history.

What the dashboard uses: a `Trainer` (the queue, owners, limits, the history) whose runs
are `Run`s read as `Snapshot`s; the models folder's `check_quota` and `save_as`. The CLI
also prices runs with `budget` and names model files with `model_filename`.
"""

from . import budget
from .jobs import JobBusyError, Run, Snapshot
from .models_folder import check_quota, model_filename, save_as
from .status import ACTIVE, ENDED, WAITING, RunStatus
from .trainer import NotYoursError, Trainer

__all__ = [
    "ACTIVE",
    "ENDED",
    "WAITING",
    "JobBusyError",
    "NotYoursError",
    "Run",
    "RunStatus",
    "Snapshot",
    "Trainer",
    "budget",
    "check_quota",
    "model_filename",
    "save_as",
]
