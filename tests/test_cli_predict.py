"""`python -m mlp_core predict`: one answer or one error per file, the exit code, --json."""

import json
import random
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageOps
from test_cli import cli

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "default.pt"

# Thick strokes on a 280x280 square, like a digit drawn on the dashboard's canvas.
STROKES = {
    7: [[(70, 60), (210, 60), (120, 230)]],
    1: [[(150, 50), (150, 230)]],
    4: [[(110, 50), (80, 160), (200, 160)], [(170, 90), (170, 240)]],
}


def drawn_digit(digit: int) -> Image.Image:
    """White strokes of `digit` on black, mode "L"."""
    img = Image.new("L", (280, 280), 0)
    for line in STROKES[digit]:
        ImageDraw.Draw(img).line(line, fill=255, width=18, joint="curve")
    return img


def predict(*args: str) -> subprocess.CompletedProcess:
    """`python -m mlp_core predict *args`, run in this process (test_cli.cli)."""
    return cli("predict", *args)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good pictures in three formats and polarities, and two files that are not pictures."""
    d = tmp_path_factory.mktemp("predict")
    out = {
        "seven.png": drawn_digit(7),
        "one.bmp": drawn_digit(1),
        "four_on_paper.jpg": ImageOps.invert(drawn_digit(4)).convert("RGB"),  # dark on white
    }
    for name, img in out.items():
        img.save(d / name)
    (d / "noise.png").write_bytes(random.Random(0).randbytes(3000))  # seeded: never a picture
    (d / "notes.txt").write_text("seven\n")
    return {name: d / name for name in [*out, "noise.png", "notes.txt"]}


EXPECTED = {"seven.png": 7, "one.bmp": 1, "four_on_paper.jpg": 4}


def test_prints_each_files_digit_and_probability(files):
    r = predict("--model", str(MODEL), *(str(files[n]) for n in EXPECTED))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    for line, (name, digit) in zip(lines, EXPECTED.items(), strict=True):
        # e.g. ".../seven.png: 7 (99.9%)"
        assert line.startswith(f"{files[name]}: {digit} ("), line
        assert line.endswith("%)") and float(line.rsplit("(", 1)[1][:-2]) > 50


def test_json_bad_files_do_not_stop_the_others(files):
    order = ["noise.png", "seven.png", "notes.txt", "four_on_paper.jpg", "one.bmp"]
    r = predict("--model", str(MODEL), "--json", *(str(files[n]) for n in order))
    assert r.returncode == 1  # not every file succeeded
    assert "Traceback" not in r.stderr
    results = json.loads(r.stdout)
    assert [res["file"] for res in results] == [str(files[n]) for n in order]
    for name, res in zip(order, results, strict=True):
        if name in EXPECTED:
            assert "error" not in res
            assert res["digit"] == EXPECTED[name]
            probs = res["probabilities"]
            assert len(probs) == 10 and all(0 <= p <= 1 for p in probs)
            assert sum(probs) == pytest.approx(1, abs=1e-4)
            assert max(probs) == probs[res["digit"]]
        else:
            assert set(res) == {"file", "error"}
            assert res["error"].startswith("This file is not a picture")


def test_plain_output_names_each_bad_file(files):
    r = predict(str(files["notes.txt"]), str(files["seven.png"]), str(REPO / "no_such.png"))
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert len(out) == 3
    assert out[0].startswith(f"{files['notes.txt']}: error: This file is not a picture")
    assert out[1].startswith(f"{files['seven.png']}: 7 (")
    assert out[2].startswith(f"{REPO / 'no_such.png'}: error: Cannot read")


@pytest.mark.parametrize("content", [b"not a model at all", None])
def test_bad_model_is_one_line_and_exit_1(files, tmp_path, content):
    model = tmp_path / "broken.pt"
    if content is not None:
        model.write_bytes(content)  # None: the file does not exist
    r = predict("--model", str(model), str(files["seven.png"]))
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr


# -- --number: several digits per picture --------------------------------------------------------


def drawn_number(digits: str) -> Image.Image:
    """The STROKES digits side by side on a wide black canvas, as drawn in the number mode."""
    img = Image.new("L", (280 * len(digits), 280), 0)
    for k, d in enumerate(digits):
        img.paste(drawn_digit(int(d)), (280 * k, 0))
    return img


@pytest.fixture(scope="module")
def numbers(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("numbers")
    drawn_number("714").save(d / "714.png")
    ImageOps.invert(drawn_number("47")).convert("RGB").save(d / "47_on_paper.jpg")
    Image.new("L", (300, 100), 255).save(d / "blank.png")
    return {p.name: p for p in d.iterdir()}


def test_number_prints_the_number_and_a_line_per_digit(numbers):
    r = predict("--number", str(numbers["714.png"]), str(numbers["47_on_paper.jpg"]))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{numbers['714.png']}: 714"
    assert [x.split(":")[0] for x in lines[1:4]] == ["  digit 1", "  digit 2", "  digit 3"]
    assert lines[1].startswith("  digit 1: 7 (") and lines[3].startswith("  digit 3: 4 (")
    assert lines[4] == f"{numbers['47_on_paper.jpg']}: 47" and len(lines) == 7


def test_number_json_and_errors(numbers):
    names = ["blank.png", "714.png", "notes.txt"]
    paths = [str(numbers.get(n, Path("/nonexistent") / n)) for n in names]
    r = predict("--number", "--json", *paths)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    blank, good, missing = json.loads(r.stdout)
    assert blank["error"].startswith("The image has no digit in it")
    assert missing["error"].startswith("Cannot read")
    assert good["number"] == "714" and good["unsure"] is False and good["problems"] == []
    assert [d["digit"] for d in good["digits"]] == [7, 1, 4]
    lefts = [d["box"][0] for d in good["digits"]]
    assert lefts == sorted(lefts)
    for d in good["digits"]:
        assert len(d["probabilities"]) == 10 and d["confidence"] == max(d["probabilities"])


def test_an_unsure_digit_names_its_runner_up(numbers):
    r = predict(str(numbers["714.png"]))  # three digits read as one: the network hesitates
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    # and the picture's three marks side by side point to reading it as a number
    unsure = r"unsure: \d or \d \(\d+\.\d% / \d+\.\d%\)"
    note = r"  \(3 marks side by side: --number reads a number\)"
    assert re.fullmatch(rf"{re.escape(str(numbers['714.png']))}: {unsure}{note}", line), line


def test_json_says_how_many_marks_stand_side_by_side(numbers, files):
    r = predict("--json", str(numbers["714.png"]), str(files["seven.png"]))
    assert r.returncode == 0, r.stderr
    assert [res["side_by_side"] for res in json.loads(r.stdout)] == [3, 1]
