"""Callbacks that pace a run for tests, importable by a worker process (which unpickles
them by module and name: classes defined inside a test function cannot travel)."""

import time

from mlp_core import Callback


class Slow(Callback):
    """Make every batch take a while, so a test can act in the middle of an epoch."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def after_batch(self, learn):
        time.sleep(self.seconds)
