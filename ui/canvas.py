"""The drawing square: white ink on black, the way MNIST's digits look."""


def canvas(key: str, width: int, height: int, stroke_width: int):
    """A canvas to draw on, sent to the server after every stroke (its picture and strokes)."""
    # imported here, in a page's run: the component registers itself on import, which
    # fails outside a running app (tests import `ui` on its own)
    from streamlit_drawable_canvas import st_canvas

    return st_canvas(
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
