"""Loss curves of bounded size, however long the run (smoothing: lr_finder.Smoother).

Every batch gives a loss, and a run of batch 1 for many epochs gives millions of them.
Readers (a chart refreshed once a second, in every open tab) copy the curve each time,
so a curve that grows without end makes every refresh slower and every copy larger.
LossHistory keeps every loss until it holds `cap` points; from then on neighbouring
points are averaged in pairs and each new point stands for twice as many batches as
before. The curve keeps its shape at a resolution of about `cap` points, and a copy
costs the same at step 1,000 and at step 1,000,000.
"""


class LossHistory:
    """Per-batch losses, at most `cap` (step, mean loss) points; `append` is O(1) amortised."""

    def __init__(self, cap: int = 4096):
        assert cap >= 2 and cap % 2 == 0
        self.cap = cap
        self.stride = 1  # batches per point
        self.steps: list[int] = []  # the last batch each point covers, 1-based
        self.values: list[float] = []  # mean loss of the batches it covers
        self._sum, self._n, self._count = 0.0, 0, 0

    def __len__(self) -> int:
        """Batches recorded (not points kept)."""
        return self._count

    def append(self, loss: float) -> None:
        self._count += 1
        self._sum, self._n = self._sum + loss, self._n + 1
        if self._n < self.stride:
            return
        self.steps.append(self._count)
        self.values.append(self._sum / self._n)
        self._sum, self._n = 0.0, 0
        if len(self.values) == self.cap:  # halve: each pair of points becomes one
            v, s = self.values, self.steps
            self.values = [(a + b) / 2 for a, b in zip(v[0::2], v[1::2])]
            self.steps = s[1::2]
            self.stride *= 2

    def points(self) -> tuple[list[int], list[float]]:
        """Copies of (steps, losses), the batches not yet averaged into a point included."""
        steps, values = list(self.steps), list(self.values)
        if self._n:
            steps.append(self._count)
            values.append(self._sum / self._n)
        return steps, values
