"""The service's protocol: what a training job says about its run, and what the server and
a worker process send each other. A fixed set of typed messages, checked on receipt:
anything else that arrives from a pipe is refused with a logged sentence, never called.

    job -> run            Starting, Began, Progressed, EpochEnded, Published, Ended
    server -> worker      Train, Stop, LRFind
    worker -> server      RunEvent (one of the job's events, for run `run_id`), Found
"""

from dataclasses import dataclass
from typing import Any

from ..recipe import Recipe
from .status import RunStatus

# -- a run's events, in the order a job sends them (Published any time, Ended last) ----------


@dataclass(frozen=True)
class Starting:
    message: str = "Loading MNIST..."


@dataclass(frozen=True)
class Began:
    total_steps: int  # batches the whole run will take


@dataclass(frozen=True)
class Progressed:
    losses: list[float]  # the losses of the batches since the last Progressed
    step: int  # batches done in all, the last of `losses` included
    seen: int  # images trained on in all
    elapsed: float  # seconds of training so far

    @property
    def steps(self) -> range:
        """The batch (1-based) each of `losses` belongs to."""
        return range(self.step - len(self.losses) + 1, self.step + 1)


@dataclass(frozen=True)
class EpochEnded:
    epoch: int  # epochs done
    accuracy: float  # test accuracy after it


@dataclass(frozen=True)
class Published:
    key: str  # "weights" (n, 28, 28), "weights_step", "norms": pictures for the live view
    value: Any


@dataclass(frozen=True)
class Ended:
    status: RunStatus  # one of status.ENDED
    message: str
    out: str | None = None  # the saved model file, if any


Event = Starting | Began | Progressed | EpochEnded | Published | Ended
EVENTS = (Starting, Began, Progressed, EpochEnded, Published, Ended)

# -- server -> worker process -----------------------------------------------------------------


@dataclass(frozen=True)
class Train:
    run_id: int
    recipe: Recipe
    cbs: list  # callbacks, pickled (they must be importable in the worker)
    eager: bool | None


@dataclass(frozen=True)
class Stop:
    run_id: int


@dataclass(frozen=True)
class LRFind:
    request_id: int
    recipe: Recipe
    kwargs: dict


# -- worker process -> server -----------------------------------------------------------------


@dataclass(frozen=True)
class RunEvent:
    run_id: int
    event: Event


@dataclass(frozen=True)
class Found:
    request_id: int
    result: Any  # an LRFinderResult, or the UserError that ended the scan
