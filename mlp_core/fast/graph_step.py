"""A whole training step captured as one CUDA graph, and the Learner that replays it.

Why a small network is slow on a GPU. One step of the 784-256-64-10 MLP is about
40 small kernels: three matrix products and their bias adds, two ReLUs, the
loss, the same again backwards, the optimizer's updates. Each does a few
microseconds of arithmetic, but Python and PyTorch spend longer than that on
the CPU to *launch* it, so the GPU mostly waits for the CPU: the step is
launch-bound. And `loss.item()` after every batch makes the CPU wait for the
GPU to finish before it launches the next step, so the two never overlap.

What a CUDA graph is. A recording of a sequence of kernels with everything
they were given: the addresses of the tensors they read and write, and every
number. Captured once (`torch.cuda.graph`), it runs again with one call,
`graph.replay()`: the GPU runs the kernels back to back, with no Python and no
launch cost between them. The price is that a replay repeats exactly what was
recorded:
- the same memory: every input must be a tensor allocated once ("static")
  whose *contents* change between replays;
- the same shapes: a smaller last batch needs a graph of its own;
- the same numbers: a learning rate passed as a Python float would stay at
  its value at capture time;
- no waiting for the GPU inside (no `.item()`, no `print(loss)`).

`StaticStep` writes one training step to those rules. The hand-written model
and optimizer are what runs; around them:
- each epoch's shuffled order is copied to the device once (drawn from the
  same seeded generator as the eager loop's, so both see the same batches);
  the step gathers its batch at a position held in a device counter, converts
  it to floats and augments it there, with random numbers from a generator on
  the device that is registered with the graph, so every replay draws new
  ones, repeatably from the seed;
- gradients come from `torch.autograd.grad` inside the step: the graph's own
  buffers, rewritten at every replay (no `zero_grad`, no fresh `.grad`);
- the learning rate, Adam's step count and the momentum buffers are tensors on
  the device (`to_device_state` in device_state.py); one-cycle computes the rate from
  the step counter (`OneCycle.lr_tensor`); all are updated inside the graph,
  where `foreach_step` (device_state.py) updates every weight with one kernel
  per operation (a graph's time goes per kernel, however small);
- each loss goes into a device buffer of the last 64. The host reads it every
  64 steps or about 0.1 s (its only wait for the GPU), then fires every
  loss's `after_batch`, so the divergence guard, the progress callbacks and a
  stop request act on those reads: a diverging or stopped run ends within
  about 0.1 s of device work, not within one batch.

Called directly, without a graph, the same step runs eagerly on any device:
that is how tests/test_graph_step.py checks its arithmetic on a CPU.
"""

import contextlib
import logging
import time

import torch

from ..data import to_float
from ..learner import CancelFitException, Learner, OneCycle
from .device_state import foreach_step, to_device_state

log = logging.getLogger(__name__)

READ_EVERY_STEPS = 64  # losses the device keeps between two reads by the host
READ_EVERY_SECONDS = 0.1  # and the most device time between two reads (stop and guard delay)
TEST_BATCH = 10_000  # the test pass in a few large batches: one wait each
WARMUP_STEPS = 3  # eager steps before capture (cuBLAS handles, autograd's streams, allocator)


def can_capture(device: torch.device) -> bool:
    """True where a step can be captured: a CUDA device."""
    return device.type == "cuda" and torch.cuda.is_available()


class StaticStep:
    """One training step that reads and writes only tensors allocated once.

    `step(b)` trains on the next `b` images of the epoch's order: replays the
    graph captured for batch size `b`, or, before `capture()` (or on a CPU),
    runs `run(b)` eagerly. `read()` returns the losses since the last read.
    """

    def __init__(self, learn: Learner, schedule: OneCycle | None, total_steps: int):
        batches, opt = learn.train, learn.opt
        self.images, self.labels = batches.split.images, batches.split.labels  # (N, 28, 28), (N,)
        self.device = self.labels.device
        self.model, self.opt, self.loss_func = learn.model, opt, learn.loss_func
        self.params, self.schedule = list(opt.params), schedule
        to_device_state(opt)  # lr, Adam's t, momentum buffers: tensors the step updates in place
        n, b = len(self.labels), batches.batch_size
        self.epoch_sizes = [b] * (n // b) + ([n % b] if n % b else [])  # as Batches cuts them
        self.shuffle, self.order_generator = batches.shuffle, batches.generator
        self.augment, self.generator = batches.augment, None
        if self.augment is not None:  # its random numbers drawn on the device, seeded as the run
            g = batches.generator
            self.seed = g.initial_seed() if g is not None else torch.initial_seed()
            self.generator = torch.Generator(self.device).manual_seed(self.seed)
        dev, long = self.device, torch.long
        self.order = torch.arange(n, device=dev)  # (N,) this epoch's order of the images
        self.start = torch.zeros((), dtype=long, device=dev)  # where the next batch starts in it
        self.count = torch.zeros((), dtype=long, device=dev)  # steps done: schedule, loss slot
        self.total = torch.tensor(float(total_steps), dtype=torch.float64, device=dev)
        self.losses = torch.full((READ_EVERY_STEPS,), float("nan"), device=dev)  # (K,)
        self.offsets = {s: torch.arange(s, device=dev) for s in set(self.epoch_sizes)}  # (s,)
        self.graphs: dict = {}  # batch size -> its captured step
        self.graph_grads: dict = {}  # batch size -> the gradient buffers its graph rewrites
        self.bound = None  # the batch size whose gradient buffers p.grad shows
        self.steps = self.read_upto = 0  # steps launched, steps whose loss the host has read

    def run(self, b: int) -> None:
        """The step itself, on the next `b` images; only static tensors in and out."""
        idx = self.order.index_select(0, self.start + self.offsets[b])  # (b,) image indices
        xb = to_float(self.images.index_select(0, idx))  # (b, 28, 28) float32 in [0, 1]
        yb = self.labels.index_select(0, idx)  # (b,) int64
        if self.augment is not None:
            xb = self.augment(xb, self.generator)  # (b, 28, 28)
        loss = self.loss_func(self.model(xb), yb)  # (b, 10) logits vs (b,) labels -> scalar
        # new gradients in buffers of their own (in a graph: the same buffers every replay),
        # instead of zero_grad + backward, which would allocate or accumulate into .grad
        grads = torch.autograd.grad(loss, self.params)
        for p, g in zip(self.params, grads):
            p.grad = g  # what the optimizer reads (and callbacks, e.g. WeightWatch)
        with torch.no_grad():
            if self.schedule is not None:  # the rate for step `count`, as OneCycle sets it
                t = (self.count / self.total).clamp(max=1.0)  # 0-dim float64
                self.opt.lr.copy_(self.schedule.lr_tensor(t))
            foreach_step(self.opt)  # step(), all weights per kernel: fewer kernels per replay
            slot = (self.count % len(self.losses)).view(1)  # (1,)
            self.losses.index_copy_(0, slot, loss.detach().view(1))
            self.count += 1  # in place: the graph adds 1 at every replay
            self.start += b

    def new_epoch(self) -> None:
        """Start a pass: a new order, drawn on the CPU from the same generator as Batches
        (so both loops see the same batches from a seed), copied to the device once."""
        if self.shuffle:
            self.order.copy_(torch.randperm(len(self.order), generator=self.order_generator))
        self.start.zero_()

    def __call__(self, b: int) -> None:
        if self.steps - self.read_upto >= len(self.losses):
            raise RuntimeError("read() the losses first: the next step would overwrite one")
        if self.graphs:
            self.graphs[b].replay()  # the whole step: one call, no Python between kernels
            if self.bound != b:  # each graph has its own gradient buffers: show the latest
                for p, g in zip(self.params, self.graph_grads[b]):
                    p.grad = g
                self.bound = b
        else:
            self.run(b)
        self.steps += 1

    def read(self) -> list[float]:
        """The losses of the steps since the last read, oldest first (waits for them)."""
        values = self.losses.tolist()  # (K,) to the host: the one wait for the device
        out = [values[s % len(values)] for s in range(self.read_upto, self.steps)]
        self.read_upto = self.steps
        return out

    def state(self) -> list[torch.Tensor]:
        """Every tensor a step changes: weights, optimizer state, counters."""
        opt = [t for v in vars(self.opt).values() for t in (v if isinstance(v, list) else [v])]
        return [t for t in (*opt, self.start, self.count, self.losses) if torch.is_tensor(t)]

    def capture(self) -> None:
        """Record one graph per batch size, after eager warm-up steps whose training is undone.

        PyTorch's CUDA-graph notes: run a few steps on a side stream first, so
        that one-time work (cuBLAS handles, autograd's stream set-up, memory)
        happens outside the capture; capture on that stream; register every
        generator the step draws from, so each replay advances it.
        """
        if not can_capture(self.device):
            raise RuntimeError(f"CUDA graphs need a CUDA device, and this run is on {self.device}")
        saved = [t.clone() for t in self.state()]
        try:
            self._record()
        finally:  # the warm-up trained for real: put back the state it started from
            with torch.no_grad():  # parameters included: a copy, not a step autograd records
                for t, s in zip(self.state(), saved):
                    t.copy_(s)
            if self.generator is not None:
                self.generator.manual_seed(self.seed)

    def _record(self) -> None:
        dev = self.device
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))  # the weights are ready before it reads
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                for b in self.offsets:
                    self.start.zero_()  # every warm-up batch from the start: indices in range
                    self.run(b)
        torch.cuda.current_stream(dev).wait_stream(side)
        for b in self.offsets:
            graph = torch.cuda.CUDAGraph()
            if self.generator is not None:
                graph.register_generator_state(self.generator)
            # thread_local: the dashboard's other threads may use CUDA meanwhile
            with torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                self.run(b)  # recorded, not run: no tensor changes here
            self.graphs[b], self.graph_grads[b] = graph, [p.grad for p in self.params]


def _on(device: torch.device):
    """Make `device` the current CUDA device (graphs replay on its current stream)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


class GraphLearner(Learner):
    """A Learner whose `fit` runs StaticStep: captured on CUDA, the losses read in chunks.

    `capture`: None captures where possible (CUDA); False runs the same static
    step eagerly (how the CPU tests check it). A capture that fails logs one
    sentence and trains with the eager loop of `Learner.fit` instead.
    """

    def __init__(self, *args, capture: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.capture = can_capture(self.device) if capture is None else capture
        self.captured = False  # did the last fit replay graphs
        self.capture_seconds = 0.0

    def fit(self, epochs: int) -> "Learner":
        """Train for `epochs` passes; after_batch fires per loss, in chunks at each read."""
        start = time.perf_counter()
        # the step computes the rate itself, from its step counter: one-cycle's callback
        # would only set a Python float that no replay reads
        schedule = next((cb for cb in self.cbs if isinstance(cb, OneCycle)), None)
        opt_attrs = dict(vars(self.opt))  # to undo to_device_state if capture fails
        try:
            with _on(self.device):
                self.static_step = StaticStep(self, schedule, epochs * len(self.train))
                if self.capture:
                    self.static_step.capture()
        except Exception as e:  # never a failed run: the eager loop can always train
            log.warning("Could not capture the training step (%s); training eagerly instead.", e)
            vars(self.opt).update(opt_attrs)
            self.captured = False
            return super().fit(epochs)
        self.captured = bool(self.static_step.graphs)
        self.capture_seconds = time.perf_counter() - start
        all_cbs, self.cbs = self.cbs, [cb for cb in self.cbs if cb is not schedule]
        try:
            with _on(self.device):
                self._fit(epochs, start)
        finally:
            self.cbs = all_cbs
        self.seconds = time.perf_counter() - start
        self("after_fit")
        return self

    def _fit(self, epochs: int, start: float) -> None:
        step = self.static_step
        self.epochs, self.stopped, self.step = epochs, False, 0
        chunk = 1  # steps between reads: grows until a chunk is about READ_EVERY_SECONDS of work
        try:
            self("before_fit")
            for epoch in range(epochs):
                self.epoch = epoch
                self.model.train()
                self("before_epoch")
                step.new_epoch()
                pending: list[tuple[int, int]] = []  # (batch index, size) not yet read
                last = time.perf_counter()
                for i, b in enumerate(step.epoch_sizes):
                    step(b)  # queued on the GPU; the CPU goes straight on to the next one
                    pending.append((i, b))
                    if len(pending) >= chunk or time.perf_counter() - last >= READ_EVERY_SECONDS:
                        read_at = self._fire(pending, start)
                        # from the first launch to the losses' arrival: the device's time per step
                        per_step = max(1e-9, (read_at - last) / len(pending))
                        chunk = max(1, min(READ_EVERY_STEPS, int(READ_EVERY_SECONDS / per_step)))
                        pending, last = [], time.perf_counter()
                self._fire(pending, start)
                if self.test is not None:
                    self.test_accuracy = self.validate(batch_size=TEST_BATCH)
                self.epochs_done = epoch + 1
                self.seconds = time.perf_counter() - start
                self("after_epoch")
        except CancelFitException:
            self.stopped = True

    def _fire(self, pending: list[tuple[int, int]], start: float) -> float:
        """Read the losses of `pending` steps, fire after_batch for each, oldest first;
        return when the read came back."""
        losses = self.static_step.read()
        read_at = time.perf_counter()
        self.seconds = read_at - start
        for k, ((i, b), loss) in enumerate(zip(pending, losses, strict=True)):
            self.iter, self.batch_size, self.loss = i, b, loss
            self.grads_fresh = k == len(pending) - 1  # p.grad holds the last step's gradients
            self.step += 1
            self("after_batch")  # DivergenceGuard first: nothing records a bad loss
        return read_at
