"""Read a number: let recognition cut the picture into its digits, then read each digit.

The network reads one centred 28x28 digit at a time, so a picture of "2026" must be cut into
its digits, and rules about ink alone cut badly: a 5 whose flag does not touch its body
becomes two digits, a broad 0 is cut in two, touching digits are split in the wrong place. So
the networks decide (LeCun, Bottou, Bengio, Haffner 1998, section VI):

    digits.find_ink (decode, even out the lighting, polarity, ink in connected pieces) ->
    drop specks, page edges, frames and lines (pieces.digit_pieces), and punctuation ->
    segment: cut generously into atoms (pieces; wide pieces again along paths that cross
    little ink and through the dips between touching digits' outlines), and
    take every run of 1-4 neighbouring atoms as a candidate digit; again with cuts closer
    together (runs of 1-5), where overlapping digits part better ->
    each candidate: the classifier's ten probabilities, the verifier's "one whole digit?",
    and the pair reader's two digits (the classifier reading each half of its picture too)
    with its "two whole digits?" ->
    the reading whose digits together score best: a shortest path over each cutting's
    candidates, each read as one digit or two, the better of the two cuttings' best

A candidate's score is log P(digit) + log P(whole): half a digit or two digits together may
look like some digit to the classifier, but the verifier (verifier.py, a small MLP of its own,
so any classifier a user trains still reads numbers) says they are not one whole digit. Two
digits that overlap may have no cut between them at all; the pair reader (pairs.py, a small
MLP of its own as well) reads such a candidate as two digits at once.

Each digit's answer comes with its confidence; below UNSURE the answer names the runner-up
("unsure: 4 or 9"). When the second-best reading scores nearly as well, the number says so,
"135 (or 1355?)", and points at the digit in doubt.
"""

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from ..metrics import predict_probs
from .decode import ImageError
from .digits import Preprocessed, find_ink, recentre, surer
from .pairs import PairReader, shipped_pair_reader
from .segment import CUTTINGS, MAX_DIGITS, Atom, Candidate, cut_number, spaced, too_many
from .verifier import Verifier, shipped_verifier

UNSURE = 0.75  # below this top probability, an answer names its runner-up
_KEEP = 4  # readings kept into each node of the path search: enough for the runner-up
_CLOSE = 1.5  # a runner-up reading within this much log-score (4.5x) is named as well
_TRUST = 0.5  # the verifier's weight against the classifier's in a candidate's score
_PER_DIGIT = 0.5  # added to a reading's score per digit: a longer reading's small bonus
_PAIR_TRUST = 1.0  # the pair reader's "two whole digits?" weight in a pair's score
_PAIR_BIAS = -0.5  # added to a pair's score: two digits read at once must earn it
_HALVES = 0.5  # the classifier's weight beside the pair reader's on each half of a pair


@dataclass(frozen=True)
class Digit:
    """One digit of a number: the network's answer and what it saw."""

    digit: int
    probabilities: list[float]  # ten, summing to 1
    box: tuple[int, int, int, int]  # (left, top, right, bottom) in the picture as read, px
    prep: Preprocessed  # the 28x28 tensor and preview the network saw
    joined: bool = False  # True: cut out of touching digits
    whole: float = 1.0  # the verifier's probability that this is one whole digit

    @property
    def confidence(self) -> float:
        return self.probabilities[self.digit]


@dataclass(frozen=True)
class Number:
    """A number read from a picture, digit by digit, left to right."""

    digits: list[Digit]
    problems: list[str]  # sentences about parts that could not be separated
    alternative: str = ""  # a reading nearly as likely ("1355" for "135"), else ""
    doubt: int | None = None  # with an alternative: the index of the digit it differs at

    @property
    def text(self) -> str:
        return "".join(str(d.digit) for d in self.digits)

    @property
    def weakest(self) -> int:
        """Index of the digit in doubt: where the alternative differs, else the one the network
        is least sure of."""
        if self.doubt is not None:
            return self.doubt
        return int(np.argmin([d.confidence for d in self.digits]))

    @property
    def unsure(self) -> bool:
        low = self.digits[self.weakest].confidence < UNSURE
        return low or bool(self.problems) or bool(self.alternative)

    @property
    def heading(self) -> str:
        """`135`, or `135 (or 1355?)` when another reading is nearly as likely."""
        return f"{self.text} (or {self.alternative}?)" if self.alternative else self.text

    @property
    def caution(self) -> str:
        """What is in doubt, one clause: `digit 3 could be 7`, or `digit 3 is in doubt: the
        picture may also read 1355`; "" when sure."""
        if not self.unsure:
            return ""
        if self.alternative:
            k, other = self.weakest + 1, self.alternative
            return f"digit {k} is in doubt: the picture may also read {other}"
        rival = int(np.argsort(self.digits[self.weakest].probabilities)[-2])
        return f"digit {self.weakest + 1} could be {rival}"

    def summary(self) -> str:
        """`2026`; `135 (or 1355? digit 3 in doubt)`; `2026 (unsure: digit 3 could be 7)`."""
        if self.alternative:
            return f"{self.text} (or {self.alternative}? digit {self.weakest + 1} in doubt)"
        return f"{self.text} (unsure: {self.caution})" if self.unsure else self.text

    def lines(self) -> list[str]:
        """One line per digit, the weakest marked when unsure, then any problem."""
        out = [
            f"digit {i + 1}: {verdict(d.probabilities)}"
            + ("  <- in doubt" if self.unsure and i == self.weakest else "")
            for i, d in enumerate(self.digits)
        ]
        return out + self.problems

    def as_dict(self) -> dict:
        """Plain values for JSON: the number, each digit's answer, box and probabilities."""
        return {
            "number": self.text,
            "unsure": self.unsure,
            "weakest": self.weakest,
            "alternative": self.alternative or None,
            "problems": self.problems,
            "digits": [
                {"digit": d.digit, "confidence": d.confidence, "whole": d.whole,
                 "box": list(d.box), "probabilities": d.probabilities}
                for d in self.digits
            ],
        }  # fmt: skip


def verdict(probs) -> str:
    """`7 (98.2%)`, or `unsure: 4 or 9 (52.0% / 41.3%)` when the top probability is low."""
    p = np.asarray(probs, dtype=float)
    first, second = np.argsort(p)[::-1][:2]
    if p[first] >= UNSURE:
        return f"{first} ({p[first]:.1%})"
    return f"unsure: {first} or {second} ({p[first]:.1%} / {p[second]:.1%})"


def read_number(
    model: torch.nn.Module,
    source: bytes | str | os.PathLike | Image.Image | np.ndarray,
    verifier: Verifier | None = None,
    pair_reader: PairReader | None = None,
) -> Number:
    """Find the digits of a number in a picture and read each one; left to right.

    `verifier`: judges whether a candidate is one whole digit; `pair_reader`: reads a
    candidate as two digits (default: the shipped ones). Raises ImageError, with one sentence
    for the user, for a picture with no digit in it (as `preprocess` does) and for one with
    more than MAX_DIGITS separate marks.
    """
    (j, best), *rest = readings(judge(model, source, verifier, pair_reader))
    shared = _shared_pieces(j.atoms, j.spans, best.steps)
    digits = [d for c, text in best.steps for d in _digits(j, c, text, c in shared)]
    if len(digits) > MAX_DIGITS:
        raise ImageError(too_many(len(digits)))
    rival = next(((k, r) for k, r in rest if best.score - r.score < _CLOSE), None)
    if rival is None:
        return Number(digits, _problems(digits))
    k, r = rival
    doubt = _first_difference(_boxed(j, best), _boxed(k, r))
    return Number(digits, _problems(digits), r.text, doubt)


def _digits(j: "Judged", c: int, text: str, shared: bool) -> list[Digit]:
    """Candidate c read as `text`: one digit, or two that the pair reader read at once (each
    with half the candidate's box and its half of the pair reader's picture)."""
    cand = j.cands[c]
    if len(text) == 1:
        return [Digit(int(text), j.probs[c].tolist(), cand.box, cand.prep, joined=shared,
                      whole=float(j.whole[c]))]  # fmt: skip
    left, top, right, bottom = cand.box
    mid = (left + right) // 2
    halves = ((j.left[c], (left, top, mid, bottom)), (j.right[c], (mid, top, right, bottom)))
    return [
        Digit(int(d), np.exp(logp).tolist(), box, _half(cand.pair, k), joined=True,
              whole=float(np.exp(j.two[c])))
        for k, (d, (logp, box)) in enumerate(zip(text, halves))
    ]  # fmt: skip


def _half(pair: torch.Tensor, k: int) -> Preprocessed:
    """The left (k = 0) or right (k = 1) 28x28 half of a pair reader's (1, 28, 56) picture,
    its ink centred: what the classifier read of that digit (`_with_classifier`)."""
    return Preprocessed.of(
        torch.from_numpy(recentre(pair[0, :, 28 * k : 28 * (k + 1)].numpy()))[None]
    )


@dataclass(frozen=True)
class Judged:
    """A picture cut into candidate digits, each judged by both networks: what `read_number`
    chooses its reading from (and what bench/bench_numbers.py --why looks into)."""

    atoms: list[Atom]
    spans: list[tuple[int, int]]  # per candidate, its run of atoms [i, j)
    cands: list[Candidate]
    probs: np.ndarray  # (C, 10) the classifier's ten probabilities per candidate
    whole: np.ndarray  # (C,) the verifier's probability that each is one whole digit
    # the pair reader's, per candidate read as two digits (None: read as one digit only)
    left: np.ndarray | None = None  # (C, 10) log P(the left digit is each digit)
    right: np.ndarray | None = None  # (C, 10) log P(the right digit is each digit)
    two: np.ndarray | None = None  # (C,) log P(two whole digits); -inf: never two (`spaced`)

    @property
    def scores(self) -> np.ndarray:
        """(C, 10): each candidate read as each digit, log P(digit) + _TRUST log P(whole) +
        _PER_DIGIT; a reading's score is the sum over its digits."""
        whole = _TRUST * np.log(self.whole + 1e-9)[:, None]
        return np.log(self.probs + 1e-9) + whole + _PER_DIGIT

    @property
    def pair_scores(self) -> np.ndarray | None:
        """(C, 100): each candidate read as two digits a, b (column 10a + b), log P(a) + log
        P(b) + _PAIR_TRUST log P(two) + two digits' _PER_DIGIT + _PAIR_BIAS; None without a
        pair reader."""
        if self.two is None:
            return None
        names = (self.left[:, :, None] + self.right[:, None, :]).reshape(len(self.two), 100)
        return names + _PAIR_TRUST * self.two[:, None] + 2 * _PER_DIGIT + _PAIR_BIAS

    def readings(self) -> list["_Reading"]:
        """The best few readings, best first, no two the same text (see `_readings`)."""
        return _readings(self.spans, self.scores, len(self.atoms), self.pair_scores)


def judge(
    model: torch.nn.Module,
    source,
    verifier: Verifier | None = None,
    pair_reader: PairReader | None = None,
) -> list[Judged]:
    """Cut a picture as `read_number` does, once per cutting (segment.CUTTINGS), and judge
    every candidate; raises ImageError as it."""
    out = []
    for found, spans, cands in cut_number(find_ink(source), CUTTINGS):
        preps = surer(model, [c.prep for c in cands])  # a thick pen's digit: as written or thinned
        cands = [replace(c, prep=p) for c, p in zip(cands, preps, strict=True)]
        pictures = torch.cat([p.tensor for p in preps])  # (C, 28, 28)
        features = torch.from_numpy(np.stack([c.features for c in cands]))  # (C, N_FEATURES)
        probs = predict_probs(model, pictures).numpy()  # (C, 10)
        whole = (verifier or shipped_verifier()).whole(pictures, features).numpy()  # (C,)
        wide = torch.cat([c.pair for c in cands])  # (C, 28, 56)
        left, right, two = (pair_reader or shipped_pair_reader()).read(wide, features)
        apart = spaced(found, spans)  # digits apart: read one by one, never as a pair
        near = torch.from_numpy(~apart)
        if near.any():
            left[near], right[near] = [
                _with_classifier(model, side[near], wide[near, :, 28 * k : 28 * (k + 1)])
                for k, side in enumerate((left, right))
            ]
        left, right, two = left.numpy(), right.numpy(), np.where(apart, -np.inf, two.numpy())
        out.append(Judged(found, spans, cands, probs, whole, left, right, two))
    return out


def _with_classifier(model, logp: torch.Tensor, halves: torch.Tensor) -> torch.Tensor:
    """The pair reader's log-probabilities for one side of its pairs (C, 10), joined by the
    classifier's for that half of each pair picture (C, 28, 28), its ink centred as MNIST's,
    weighted _HALVES: two networks that see the digit differently agree more often on the
    right answer than on the same wrong one."""
    centred = torch.from_numpy(np.stack([recentre(h) for h in halves.numpy()]))
    classifier = torch.log(predict_probs(model, centred) + 1e-9)
    return torch.log_softmax(logp + _HALVES * classifier, dim=1)


def readings(judged: list[Judged]) -> list[tuple[Judged, "_Reading"]]:
    """The best few readings over all the cuttings, best first, no two the same text; each
    with the cutting it was read from."""
    best: dict[str, tuple[Judged, _Reading]] = {}
    for j in judged:
        for r in j.readings():
            if r.text not in best or best[r.text][1].score < r.score:
                best[r.text] = (j, r)
    return sorted(best.values(), key=lambda jr: -jr[1].score)


@dataclass(frozen=True)
class _Reading:
    score: float  # the sum over its candidates' scores (`Judged.scores`, `.pair_scores`)
    steps: tuple[tuple[int, str], ...]  # (candidate, its digit or two digits) left to right

    @property
    def text(self) -> str:
        return "".join(t for _, t in self.steps)


def _readings(spans, score: np.ndarray, n: int, pair_score: np.ndarray | None = None):
    """The best few readings of atoms 0..n, best first, no two the same text: a shortest path
    over the graph whose nodes are the gaps between atoms and whose edges are the candidates,
    each read as its two likeliest digits by `score` (C, 10) and, with `pair_score` (C, 100),
    as its two likeliest pairs of digits; keeping the _KEEP best paths into each node."""
    leaving = [[] for _ in range(n)]
    for c, (i, _) in enumerate(spans):
        leaving[i].append(c)
    into: list[dict[str, _Reading]] = [{} for _ in range(n + 1)]
    into[0][""] = _Reading(0.0, ())
    for i in range(n):
        for r in sorted(into[i].values(), key=lambda r: -r.score)[:_KEEP]:
            for c in leaving[i]:
                for read, s in _reads(c, score, pair_score):
                    new = _Reading(r.score + s, (*r.steps, (c, read)))
                    j, text = spans[c][1], r.text + read
                    if text not in into[j] or into[j][text].score < new.score:
                        into[j][text] = new
    return sorted(into[n].values(), key=lambda r: -r.score)


def _reads(c: int, score: np.ndarray, pair_score: np.ndarray | None) -> list[tuple[str, float]]:
    """Candidate c's two likeliest digits and, with pair scores, its two likeliest pairs."""
    out = [(str(d), float(score[c, d])) for d in np.argsort(score[c])[-2:].tolist()]
    if pair_score is not None:
        best = np.argsort(pair_score[c])[-2:]
        out += [(f"{k:02d}", float(pair_score[c, k])) for k in best if pair_score[c, k] > -np.inf]
    return out


def _boxed(j: Judged, r: "_Reading") -> list[tuple[tuple[int, int, int, int], str, int]]:
    """A reading's digits as (box, digit, place in its candidate): comparable across
    cuttings, unlike candidates."""
    return [(j.cands[c].box, d, k) for c, text in r.steps for k, d in enumerate(text)]


def _first_difference(steps, other) -> int:
    """The index of the first digit of `steps` that `other` does not read the same way."""
    return next((k for k, s in enumerate(steps) if s not in other), len(steps) - 1)


def _shared_pieces(found: list[Atom], spans, steps) -> set[int]:
    """The candidates of a reading that hold a part of a piece cut between digits."""
    owners: dict[tuple[int, ...], set[int]] = {}
    for c, _ in steps:
        for a in found[spans[c][0] : spans[c][1]]:
            owners.setdefault(a.pieces, set()).add(c)
    return {c for cs in owners.values() if len(cs) > 1 for c in cs}


def _problems(digits: list[Digit]) -> list[str]:
    """A sentence per run of digits cut apart from one piece and read without confidence."""
    out, k = [], 0
    while k < len(digits):
        end = k
        while end + 1 < len(digits) and digits[end + 1].joined and digits[k].joined:
            end += 1
        group = digits[k : end + 1]
        if end > k and min(d.confidence * d.whole for d in group) < UNSURE:
            out.append(
                f"Digits {k + 1} to {end + 1} touch and could not be separated with confidence."
            )
        k = end + 1
    return out
