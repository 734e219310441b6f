"""Lessons: named recipes that each make one idea of learning visible, with what to watch.

A lesson is data: its recipe (the Train page's "Start from" fills the form with it), a
recipe to run against it where the idea is a comparison, two or three sentences for the
class, and the claims those sentences make, checked on real MNIST by a short run
(tests/test_lessons.py), so the text never promises what a run does not show.
"""

from dataclasses import dataclass, replace

from ..recipe import Recipe

# The notebook's own run: randn x 0.1 weights, plain steps p -= lr x grad, no extras.
NOTEBOOK = Recipe(
    hidden=(256, 64), init="notebook", optimizer="basic", lr=0.01, schedule="constant",
    weight_decay=0.0, batch_size=64, epochs=15, augment=False,
)  # fmt: skip
BEST = Recipe()  # the shipped model's recipe (README, "The shipped model")


# The digits a claim's accuracies are measured on (tests/test_lessons.py renders the photos
# with tests/digit_pictures.py and turns them into 28x28 digits with mlp_core.vision.digits).
DIGITS = {
    "test": "the 10,000 digits of MNIST's test split",
    "photos": "200 rendered phone photos of printed digits, turned by up to 10 degrees",
    "tilted photos": "200 more such photos, turned by 15 to 25 degrees",
}


@dataclass(frozen=True)
class Claim:
    """What a short run shows: `kind` of outcome, a threshold, and the run's size.

    kinds: "reaches" (accuracy >= value), "diverges" (the run stops as diverged),
    "stalls" (the mean loss of the last 10 batches >= value x that of the first 10),
    "beats" (the lesson's recipe's accuracy exceeds the other's by >= value), "trails"
    (the other's exceeds the lesson's by >= value), "matches" (the two are within value).
    Accuracies are measured on `on`, one of DIGITS.
    """

    kind: str
    value: float = 0.0
    images: int = 10_000  # the run trains on the first `images` training images
    epochs: int = 1
    on: str = "test"

    def holds(self, ours: dict, other: dict | None = None) -> bool:
        """Whether outcomes ({"accuracy": {on: accuracy}, "first_loss", "last_loss",
        "diverged"}) show it."""
        if self.kind == "diverges":
            return ours["diverged"]
        if ours["diverged"] or (other is not None and other["diverged"]):
            return False
        if self.kind == "stalls":
            return ours["last_loss"] >= self.value * ours["first_loss"]
        acc = ours["accuracy"][self.on]
        if self.kind == "reaches":
            return acc >= self.value
        if self.kind == "beats":
            return acc - other["accuracy"][self.on] >= self.value
        if self.kind == "trails":
            return other["accuracy"][self.on] - acc >= self.value
        if self.kind == "matches":
            return abs(acc - other["accuracy"][self.on]) <= self.value
        raise ValueError(f"unknown claim kind {self.kind!r}")


@dataclass(frozen=True)
class Lesson:
    key: str  # in links: ?lesson=key
    name: str  # in the "Start from" chooser
    recipe: Recipe  # what the form is filled with
    text: str  # what to watch and why, for the class
    claim: Claim
    other: Recipe | None = None  # the recipe to run next to it, for a comparison
    other_name: str = ""  # what differs in `other`, e.g. "batch 1024"
    also: tuple[Claim, ...] = ()  # more claims on the same runs (images, epochs), other digits

    @property
    def claims(self) -> tuple[Claim, ...]:
        return (self.claim, *self.also)


LESSONS = (
    Lesson(
        "notebook", "The notebook's own run", NOTEBOOK,
        "The notebook's recipe: weights drawn as randn × 0.1, BasicOptim's plain steps "
        "(every weight moves by lr × its gradient), lr 0.01, batch 64. Watch the loss fall "
        "steeply at first, then slowly: one epoch over the 60,000 images already reads more "
        "than 85% of the test digits.",
        Claim("reaches", 0.85, images=60_000),
    ),
    Lesson(
        "best", "This app's best recipe (the shipped model's)", BEST,
        "Kaiming's initialisation, Adam, a one-cycle schedule and augmented images: the "
        "recipe of the model this app ships. Adam sizes each weight's step by its recent "
        "gradients, so one epoch over the 60,000 images already reads more than 95% of the "
        "test digits.",
        Claim("reaches", 0.95, images=60_000),
    ),
    Lesson(
        "lr-too-large", "Too large a learning rate: the loss explodes", replace(NOTEBOOK, lr=5.0),
        "The notebook's run with lr 5 instead of 0.01. Each step overshoots the minimum it "
        "aims at and lands where the loss is higher and the gradients larger, so the next "
        "step overshoots further: the loss explodes within the first epoch and the run stops "
        "as diverged.",
        Claim("diverges", images=5_000),
    ),
    Lesson(
        "lr-too-small", "Too small a learning rate: the loss barely moves",
        replace(NOTEBOOK, lr=1e-4),
        "The notebook's run with lr 0.0001 instead of 0.01. The gradients point the right "
        "way, but each step is a hundred times shorter: after an epoch on 5,000 images the "
        "loss of the last batches is still above 95% of the first ones'.",
        Claim("stalls", 0.95, images=5_000),
    ),
    Lesson(
        "linear", "No hidden layer: a linear model 784 → 10", replace(BEST, hidden=()),
        "No hidden layer (leave the sizes empty): each digit's score is one weighted sum of "
        "the 784 pixels, a single template per digit. Without hidden layers and their ReLUs "
        "the network cannot combine strokes into parts, and on the same short run (one epoch "
        "on 10,000 images) it reads at least 5 points fewer test digits than 256, 64.",
        Claim("trails", 0.05), BEST, "hidden 256, 64",
    ),
    Lesson(
        "init", "The notebook's initialisation against Kaiming's",
        replace(NOTEBOOK, lr=0.1),
        "The notebook's run at lr 0.1 with its randn × 0.1 weights; then run it again with "
        "Kaiming's, which scale each layer's weights to its number of inputs so signals keep "
        "their size from layer to layer. On one epoch of 10,000 images Kaiming's start reads "
        "at least 3 points more test digits.",
        Claim("trails", 0.03), replace(NOTEBOOK, lr=0.1, init="kaiming"), "init kaiming",
    ),
    Lesson(
        "batch", "Batch 8 against batch 1024, same epochs",
        replace(NOTEBOOK, init="kaiming", batch_size=8),
        "Batch 8, then batch 1024, for the same one epoch of 10,000 images. The same pictures "
        "go by, but batch 8 takes 1,250 steps and batch 1024 only 10: the small batches' "
        "noisy gradients still point downhill, and at lr 0.01 ten steps barely start. Batch "
        "8 reads at least 30 points more test digits.",
        Claim("beats", 0.30), replace(NOTEBOOK, init="kaiming", batch_size=1024), "batch 1024",
    ),
    Lesson(
        "augment", "Without and with augmentation", replace(BEST, augment=False, epochs=8),
        "This app's best recipe for 8 epochs without augmentation, then with it (each "
        "training image shifted by up to 2 pixels and turned by up to 10 degrees, anew every "
        "epoch). On MNIST's test split, whose digits are centred and upright like the "
        "training ones, the two runs stay within 1 point of each other. On pictures unlike "
        "MNIST's the augmented run reads more: at least 3 points more of 200 rendered phone "
        "photos of printed digits tilted by 15 to 25 degrees, further than any training "
        "image was turned.",
        Claim("matches", 0.01, images=60_000, epochs=8), replace(BEST, epochs=8),
        "augmentation on",
        also=(
            # seeds 0-3: 5, 8, 5.5 and 6 points more (on upright photos 0 to 2 points: a claim
            # about those would hold for some seeds and not others, so none is made)
            Claim("trails", 0.03, images=60_000, epochs=8, on="tilted photos"),
        ),
    ),
)  # fmt: skip

BY_KEY = {lesson.key: lesson for lesson in LESSONS}
