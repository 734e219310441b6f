"""A run's status: one enum, whose values are the strings the run history stores."""

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is. The values are stored in runs.sqlite: never change one."""

    QUEUED = "queued"  # waiting for its device
    STARTING = "starting"  # its worker is loading MNIST, building the model
    RUNNING = "running"  # training
    FINISHED = "finished"  # trained every epoch; its model saved
    STOPPED = "stopped"  # stopped by its browser (saved if an epoch had ended)
    DIVERGED = "diverged"  # the loss became NaN, infinite or exploded
    FAILED = "failed"  # anything else: out of memory, a worker killed, the folder full
    CANCELLED = "cancelled"  # cancelled while waiting, or waiting when the server stopped
    INTERRUPTED = "interrupted"  # training when the server stopped


WAITING = frozenset({RunStatus.QUEUED})
ACTIVE = frozenset({RunStatus.STARTING, RunStatus.RUNNING})
ENDED = frozenset(RunStatus) - WAITING - ACTIVE
