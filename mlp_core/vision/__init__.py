"""The picture reader: any picture of a digit or a number -> MNIST's 28x28 format, read.

decode.py opens untrusted pictures safely; digits.py finds the digit and rebuilds it as
MNIST made its digits; pieces.py splits the ink into connected pieces; segment.py cuts a
row of them into candidate digits, verifier.py judges which are whole, numbers.py reads the
row; compose.py makes numbers of MNIST digits to learn from.
"""

from .decode import ACCEPTED_FORMATS, MAX_PIXELS, ImageError, picture_from_data_url
from .digits import Preprocessed, preprocess, surer
from .numbers import UNSURE, Number, read_number, verdict

__all__ = [
    "ACCEPTED_FORMATS",
    "MAX_PIXELS",
    "UNSURE",
    "ImageError",
    "Number",
    "Preprocessed",
    "picture_from_data_url",
    "preprocess",
    "read_number",
    "surer",
    "verdict",
]
