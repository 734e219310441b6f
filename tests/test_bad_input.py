"""Every file of the bad-input corpus, through the CLI and the Predict page: a digit or a sentence.

The corpus (tests/make_bad_corpus.py) holds decompression bombs, broken files, other content
behind image names, refused formats, a 1000-frame GIF, odd sizes, modes and EXIF blocks, and
pictures with nothing to read. Each must give the digit its Case names, or its one-sentence
error; never a traceback, a crash or a run-away decode.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest
from PIL import GifImagePlugin, ImageFile
from streamlit.testing.v1 import AppTest

import ui
from conftest import REPO, shown
from make_bad_corpus import ANY_DIGIT, MARKER, three
from mlp_core import load_checkpoint
from mlp_core.metrics import predict_probs
from mlp_core.vision.digits import preprocess, surer

MODEL = REPO / "models" / "default.pt"
PREDICTION = re.compile(r"^#### Prediction: (\d) \(\d+\.\d%\)$")


def check(case, digit: int | None, error: str | None) -> str | None:
    """What is wrong with one file's outcome, or None when it is what the Case asks for."""
    if isinstance(case.expect, int):
        if error is not None:
            return f"{case.name} ({case.why}): expected a digit, got the error {error!r}"
        if case.expect not in (ANY_DIGIT, digit):
            return f"{case.name} ({case.why}): expected {case.expect}, read {digit}"
        return None
    if error is None:
        return f"{case.name} ({case.why}): expected an error, read the digit {digit}"
    if not re.search(case.expect, error):
        return f"{case.name} ({case.why}): error {error!r} does not match {case.expect!r}"
    if "\n" in error or "Traceback" in error or not error.endswith("."):
        return f"{case.name}: not one sentence: {error!r}"
    return None


def test_the_cli_answers_every_file_with_a_digit_or_one_sentence(bad_corpus, report):
    folder, cases = bad_corpus
    paths = [str(folder / c.name) for c in cases]
    began = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "mlp_core", "predict", "--model", str(MODEL), "--json", *paths],
        cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"}, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    seconds = time.monotonic() - began
    report(f"CLI: {len(cases)} files in {seconds:.1f} s")
    assert r.returncode == 1, r.stderr  # 1: some files were refused, none crashed
    assert r.stderr == "" and "Traceback" not in r.stdout
    results = json.loads(r.stdout)
    assert [r["file"] for r in results] == paths
    problems = [
        check(case, r.get("digit"), r.get("error")) for case, r in zip(cases, results, strict=True)
    ]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    assert not (folder / MARKER).exists(), "the pickle's payload ran"


def page_outcomes(at: AppTest) -> dict[str, tuple[int | None, str | None]]:
    """Per uploaded file on the Predict page: (digit, None) or (None, its error sentence)."""
    out: dict[str, tuple[int | None, str | None]] = {}
    for e in at.error:
        name, _, sentence = e.value.partition("**: ")
        out[shown(name.removeprefix("**"))] = (None, sentence)
    md = [m.value for m in at.markdown]
    for title, line in zip(md, md[1:]):
        if (found := PREDICTION.match(line)) and re.fullmatch(r"\*\*.+\*\*", title):
            out[shown(title[2:-2])] = (int(found[1]), None)
    return out


def test_the_predict_page_answers_every_file_with_a_digit_or_one_sentence(bad_corpus, report):
    folder, cases = bad_corpus
    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=120).run()
    at.switch_page("app_pages/predict.py").run()
    uploader = at.file_uploader(key="predict_files")
    allowed = set(uploader.allowed_type)
    # The uploader itself refuses other extensions (in the browser and on the server), so a
    # picture named .exe never reaches the page; it gets the page's own function instead.
    sent = [c for c in cases if os.path.splitext(c.name)[1].lower() in allowed]
    unsent = [c for c in cases if c not in sent]
    assert [c.name for c in unsent] == ["seven.exe"]
    outcomes, seconds = {}, 0.0
    step = ui.MAX_FILES_PER_UPLOAD  # one upload takes at most this many pictures
    for i in range(0, len(sent), step):
        batch = sent[i : i + step]
        at.file_uploader(key="predict_files").set_value(
            [(c.name, (folder / c.name).read_bytes(), "image/png") for c in batch]
        )
        began = time.monotonic()
        at.run()
        seconds += time.monotonic() - began
        assert not at.exception, at.exception[0].value if at.exception else ""
        assert not at.warning  # no file was dropped
        outcomes |= page_outcomes(at)
    report(f"Predict page: {len(sent)} files in {seconds:.1f} s")
    assert sorted(outcomes) == sorted(c.name for c in sent)
    problems = [check(c, *outcomes[c.name]) for c in sent]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)
    assert not (folder / MARKER).exists(), "the pickle's payload ran"

    model = load_checkpoint(MODEL).model
    for case in unsent:  # what the page does with the bytes: preprocess, then the model
        prep = surer(model, [preprocess((folder / case.name).read_bytes())])[0]
        probs = predict_probs(model, prep.tensor)[0]
        assert check(case, int(probs.argmax()), None) is None


def test_a_1000_frame_gif_is_read_from_its_first_frame_alone(bad_corpus, monkeypatch):
    folder, cases = bad_corpus
    data = (folder / "animated_1000.gif").read_bytes()
    frames = []  # every frame PIL moved to: the work, counted (not timed)
    seek = GifImagePlugin.GifImageFile._seek
    monkeypatch.setattr(
        GifImagePlugin.GifImageFile,
        "_seek",
        lambda self, frame, *a, **kw: frames.append(frame) or seek(self, frame, *a, **kw),
    )
    got = preprocess(data).tensor
    assert frames and set(frames) == {0}, f"frames decoded: {sorted(set(frames))[:10]}..."
    assert (got - preprocess(three()).tensor).abs().max() < 1e-6


@pytest.mark.parametrize("name", ["bomb_10000x10000.png", "bomb_20000x20000.png", "bomb.gif"])
def test_bombs_are_refused_before_a_pixel_is_decoded(bad_corpus, name, monkeypatch):
    folder, _ = bad_corpus
    data = (folder / name).read_bytes()
    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or load(self)
    )
    with pytest.raises(ValueError, match="the limit is 25 megapixels"):
        preprocess(data)
    assert decoded == []
