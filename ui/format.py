"""Text and pictures as a visitor sees them: user text made literal, durations, rates, pixels."""

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def plain(text: str) -> str:
    """Text a user typed or named (a file name, a field), shown literally inside markdown.

    On one line, only inline marks can act: emphasis, code, strikethrough, math, tables,
    HTML, [links](...), ![images](...), :red[colours] and :material/icons:; a character
    of each is escaped. Bare addresses (www.x.org, a@b.c, http://...) become links
    after escapes are read, so a zero-width space breaks their pattern instead.
    """
    text = " ".join(str(text).splitlines())  # one line: no headings, lists or blocks
    text = re.sub(r"(?i)(www|://|@)", lambda m: m[1][:1] + "\u200b" + m[1][1:], text)
    text = re.sub(r"([\\`*_<>~|$])", r"\\\1", text).replace("](", "]\\(")
    return re.sub(r":(?=\S)", r"\\:", text)  # :red[...], :material/icon:


def duration(seconds: float | None) -> str:
    """`4.2 s`, `37 s`, `3 min 05 s`, `2 h 04 min`; `—` when unknown."""
    if seconds is None:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


def shown_path(out: str) -> str:
    """A model file as visitors see it: its name in the models folder, never the server's
    own folders."""
    return f"models/{Path(out).name}"


def short(x: float) -> str:
    """A learning rate in two significant digits: 0.0016, 0.2, 1e-6 (not 1e-06)."""
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].replace('+', '')}{m[2]}", f"{x:.2g}")


def prediction_line(probs) -> str:
    """`Prediction: 7 (98.2%)` for ten probabilities."""
    digit = int(np.argmax(probs))
    return f"Prediction: {digit} ({float(probs[digit]):.1%})"


def upscale(image: Image.Image | torch.Tensor, side: int) -> Image.Image:
    """A 28x28 picture (PIL, or a uint8 tensor) blown up with hard pixel edges, to be seen."""
    if isinstance(image, torch.Tensor):
        image = Image.fromarray(image.numpy())
    return image.resize((side, side), Image.Resampling.NEAREST)


def enlarge(rgb: np.ndarray, factor: int) -> Image.Image:
    """An (h, w, 3) uint8 picture blown up `factor` times with hard pixel edges."""
    h, w = rgb.shape[:2]
    return Image.fromarray(rgb).resize((w * factor, h * factor), Image.Resampling.NEAREST)


def run_name(run_id: int) -> str:
    """How a run is named in pickers: "#7"."""
    return f"#{run_id}"
