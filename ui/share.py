"""Where the Train form starts from: a lesson, or a link that carries a recipe.

A link's query parameters are hostile text: each field is parsed by Recipe's declaration
(`mlp_core.recipe.from_query`), anything bad or unknown is replaced by the defaults and
named in one sentence, and nothing from a link runs until the visitor presses Start.
"""

from dataclasses import fields

import streamlit as st

from mlp_core.recipe import LINKED, Recipe, from_query, to_query
from mlp_core.teach import BY_KEY, Lesson

from .format import plain
from .recipe_form import shipped_recipe

NAMED = 5  # refused names a sentence lists at most
NAME_CHARS = 30  # characters of each


def fill_form(recipe: Recipe) -> None:
    """Show `recipe` in the form's widgets (train_<field>) on this run; the device stays."""
    st.session_state["train_recipe"] = recipe
    for f in fields(Recipe):
        if f.name in LINKED:
            v = getattr(recipe, f.name)
            st.session_state[f"train_{f.name}"] = (
                ", ".join(map(str, v)) if f.type == tuple[int, ...] else v
            )


def refused_sentence(names: list[str]) -> str:
    """One sentence naming what a link held that the form could not take."""
    shown = [n[:NAME_CHARS] + ("…" if len(n) > NAME_CHARS else "") for n in names[:NAMED]]
    if len(names) > NAMED:
        shown.append(f"{len(names) - NAMED} more")
    listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    return f"This link's {listed} could not be used: the form shows the defaults instead."


def read_link() -> None:
    """Fill the form (and the lesson) from the page's link, once per visit."""
    params = st.query_params.to_dict()  # {name: last value}
    if not params:
        return
    key = params.get("lesson")
    lesson = BY_KEY.get(key) if isinstance(key, str) else None
    recipe, bad = from_query(params, lesson.recipe if lesson else shipped_recipe())
    bad += [k for k in params if k not in (*LINKED, "lesson")]
    if key is not None and lesson is None:
        bad.insert(0, "lesson")
    st.session_state["train_lesson"] = lesson.key if lesson else ""
    fill_form(recipe)
    if bad:
        st.session_state["train_link_refused"] = refused_sentence(bad)


def write_link(recipe: Recipe) -> None:
    """Keep `recipe` (and the lesson chosen) in the page's link, to copy and share."""
    key = st.session_state.get("train_lesson")
    params = ({"lesson": key} if key in BY_KEY else {}) | to_query(recipe)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def _lesson_chosen() -> None:
    lesson = BY_KEY.get(st.session_state.get("train_lesson"))
    if lesson is not None:
        fill_form(lesson.recipe)
    st.session_state.pop("train_link_refused", None)


def start_from() -> Lesson | None:
    """The "Start from" chooser, its lesson's text, and what a link could not fill."""
    if "train_link_read" not in st.session_state:
        st.session_state["train_link_read"] = True
        read_link()
    key = st.selectbox(
        "Start from",
        ["", *BY_KEY],
        format_func=lambda k: BY_KEY[k].name if k in BY_KEY else "Your own recipe",
        key="train_lesson",
        on_change=_lesson_chosen,
        help="A lesson fills the form with a recipe that shows one idea; press Start to run it. "
        "The page's address always holds the form's recipe: copy it to share.",
    )
    lesson = BY_KEY.get(key)
    if lesson is not None:
        st.info(lesson.text, icon=":material/school:")
        if lesson.other is not None:
            st.caption(
                f"Then run it again with {lesson.other_name} and compare the two runs' curves "
                "in the table below."
            )
    if (refused := st.session_state.get("train_link_refused")) is not None:
        st.warning(plain(refused), icon=":material/link_off:")
    return lesson
