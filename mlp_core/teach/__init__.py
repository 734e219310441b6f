"""Teaching with the library: the seven steps of learning, the lessons' recipes, and a
network stepped one mini-batch at a time (Step through)."""

from .lessons import BY_KEY, LESSONS, NOTEBOOK, Lesson
from .stepper import Stepper, code_for
from .steps import STEPS, source

__all__ = ["BY_KEY", "LESSONS", "NOTEBOOK", "STEPS", "Lesson", "Stepper", "code_for", "source"]
