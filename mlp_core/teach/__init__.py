"""Teaching with the library: the seven steps of learning and the lessons' recipes."""

from .lessons import BY_KEY, LESSONS, NOTEBOOK, Lesson
from .steps import STEPS, source

__all__ = ["BY_KEY", "LESSONS", "NOTEBOOK", "STEPS", "Lesson", "source"]
