"""The drawing square: white ink on black, the way MNIST's digits look.

What the canvas sends is a widget value, and a browser can forge it: the drawing's picture
(a PNG data URL) is priced by `picture_from_data_url` (its length, then its header's width
and height against this canvas's own size) before anything is decoded.
"""

from dataclasses import dataclass

from mlp_core.vision import ImageError, picture_from_data_url


@dataclass(frozen=True)
class Drawing:
    """What the canvas sent: whether anything is drawn, its picture (file bytes, not yet
    decoded) and, for a value that cannot be a drawing of this canvas, why (one sentence)."""

    drawn: bool
    picture: bytes | None = None
    problem: str | None = None


def canvas(key: str, width: int, height: int, stroke_width: int) -> Drawing:
    """A canvas to draw on, sent to the server after every stroke (its picture and strokes)."""
    # imported here, in a page's run: the component registers itself on import, which
    # fails outside a running app (tests import `ui` on its own)
    from streamlit_drawable_canvas import st_canvas

    try:
        result = st_canvas(
            stroke_width=stroke_width,
            stroke_color="#FFFFFF",
            background_color="#000000",
            height=height,
            width=width,
            drawing_mode="freedraw",
            update_streamlit=True,  # answer on every stroke
            return_image_data=True,
            key=key,
        )
    except (AttributeError, TypeError, KeyError, ValueError):
        # the component is drawn before its value is unpacked: a forged value of the wrong
        # shape (a string for the drawing, a list for its state) fails only the unpacking
        return Drawing(False, problem="The drawing did not arrive as a drawing.")
    # the data URL itself, not `image_data` or `image_bytes`: those decode it unchecked
    return drawing(result.json_data, getattr(result, "_image_data_url", None), width, height)


def drawing(strokes, url, width: int, height: int) -> Drawing:
    """Check a canvas's value (its strokes as Fabric.js JSON, its picture as a data URL)."""
    objects = strokes.get("objects") if isinstance(strokes, dict) else None
    drawn = isinstance(objects, list) and bool(objects)
    if not drawn or url is None:
        return Drawing(drawn)
    try:
        return Drawing(True, picture_from_data_url(url, width, height))
    except ImageError as e:
        return Drawing(True, problem=str(e))
