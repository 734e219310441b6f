"""Predict: draw a digit or upload pictures of digits, and see what the network thinks."""

import streamlit as st

import ui
from mlp_core.vision import (
    ACCEPTED_FORMATS,
    MAX_PIXELS,
    ImageError,
    Number,
    preprocess,
    read_number,
    surer,
    verdict,
)

UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp"]
DRAW_HINT = "Draw a digit on the black square: one digit, as large as the square allows."
NUMBER_HINT = "Draw a number on the black strip, digits side by side, or upload a photo of one."


def say_side_by_side(prep, what: str = "picture") -> None:
    """Where a picture read as one digit holds several digit-sized marks side by side, say so
    and point to the tab that reads numbers."""
    if (n := prep.side_by_side) > 1:
        st.info(
            f"This {what} has {n} marks side by side, read here as one digit. If it is a "
            "number, the **A number** tab reads it digit by digit.",
            icon=":material/info:",
        )


def show_number(model, source) -> None:
    """Read a number: "Read: 2026", then each digit's 28x28 picture, answer and probabilities."""
    try:
        found: Number = read_number(model, source)
    except ImageError as e:
        st.info(f"{NUMBER_HINT} ({e})")
        return
    st.markdown(f"#### Read: {found.heading}")
    for problem in found.problems:
        st.warning(problem)
    if found.unsure:
        st.caption(f"Unsure: {found.caution}.")
    for col, (i, d) in zip(st.columns(len(found.digits)), enumerate(found.digits), strict=True):
        weakest = found.unsure and i == found.weakest
        with col, st.container(border=True):
            st.image(ui.upscale(d.prep.preview, 112), caption=f"digit {i + 1}")
            st.markdown(("**weakest:** " if weakest else "") + verdict(d.probabilities))
            st.altair_chart(ui.probability_chart(d.probabilities, height=110), width="stretch")


st.title("Predict")
st.caption(
    "Each picture is cropped to its ink, scaled and centred the way MNIST's digits were, "
    "then the network gives a probability for each of the ten digits. **Why this answer?** "
    "under a result looks inside the network: which units lit up and which ink mattered."
)
_, ckpt = ui.model_picker("predict_model")

draw, upload, number = st.tabs(["Draw", "Upload", "A number"])

with draw:
    # the square at its own 280 pixels (in a third of the page, as columns in proportion
    # gave it, the square was cut below a ~1,400-px window); the answer at 420 beside it,
    # or below it where the row has no room for both (squeezed, it was 196 at 1,000 px)
    row = st.container(horizontal=True, gap="large")
    c_canvas, c_result = row.container(width=280), row.container(width=420)
    with c_canvas:
        st.caption("Draw one digit, large. The toolbar undoes a stroke or clears the square.")
        canvas = ui.canvas("predict_canvas", width=280, height=280, stroke_width=18)
    with c_result:
        if canvas.problem:  # a forged value: nothing of it was decoded
            st.warning(canvas.problem, icon=":material/warning:")
        elif not canvas.drawn or canvas.picture is None:
            st.info(DRAW_HINT)
        elif ckpt is not None:
            try:
                prep = preprocess(canvas.picture)
                say_side_by_side(prep, "drawing")
                prep = surer(ckpt.model, [prep])[0]
                ui.show_prediction(ckpt.model, prep, key="predict_why_drawing", why_open=True)
            except ImageError as e:  # a dot, or strokes too faint to count as ink
                st.info(f"{DRAW_HINT} ({e})")

with upload:
    files = st.file_uploader(
        "Pictures of digits, one digit each",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="predict_files",
    )
    names = ", ".join(ACCEPTED_FORMATS[:-1]) + " or " + ACCEPTED_FORMATS[-1]
    st.caption(
        f"Up to {ui.MAX_FILES_PER_UPLOAD} {names} files of up to "
        f"{st.get_option('server.maxUploadSize')} MB and {MAX_PIXELS / 1e6:g} megapixels each "
        f"({ui.MAX_SESSION_UPLOAD_BYTES // 2**20} MB in all). Any colours: dark ink on paper, "
        "a photo or light ink on a dark screen."
    )
    files, dropped = ui.limit_uploads(files)
    if dropped:
        st.warning(dropped, icon=":material/warning:")
    for row in range(0, len(files), 2):
        for col, f in zip(st.columns(2), files[row : row + 2], strict=False):
            with col, st.container(border=True), ui.one_at_a_time():
                name = ui.plain(f.name)  # a file name is the sender's text, shown as text
                try:
                    prep = preprocess(f.getvalue())
                except ImageError as e:
                    st.error(f"**{name}**: {e}")
                    continue
                st.markdown(f"**{name}**")
                say_side_by_side(prep)
                if ckpt is not None:
                    prep = surer(ckpt.model, [prep])[0]
                    ui.show_prediction(ckpt.model, prep, key=f"predict_why_{f.file_id}")

with number:
    st.caption(
        "Digits side by side, up to 12, apart or touching. The ink is cut every way it could "
        "split into digits; the network reads each piece, and the reading it is surest of wins."
    )
    # 540 pixels: the whole strip stays in a 1,000-pixel window with the sidebar open (700
    # were cut below about 1,160 pixels, the right of a number drawn out of sight)
    strip = ui.canvas("predict_number_canvas", width=540, height=180, stroke_width=14)
    photo = st.file_uploader(
        "Or a picture of a number", type=UPLOAD_TYPES, key="predict_number_file"
    )  # one file: within the limits by itself
    drawn = strip.drawn and strip.picture is not None
    if strip.problem and photo is None:  # a forged value: nothing of it was decoded
        st.warning(strip.problem, icon=":material/warning:")
    elif ckpt is not None and (photo is not None or drawn):
        show_number(ckpt.model, photo.getvalue() if photo is not None else strip.picture)
    else:
        st.info(NUMBER_HINT)

ui.keep_only_uploads([*files, photo])  # any other upload of this session leaves memory now
