"""A whole training step (forward, loss, backward, optimizer step) captured in one CUDA graph.

`torch.compile(mode="reduce-overhead")` graphs the forward and the backward pass separately and leaves the
loss, the autograd engine's hand-over between the two and the optimizer step to the host, step after step.
Here the model is compiled without CUDA graphs of its own (mode "default": the same fused kernels), and the
whole step is captured once with `torch.cuda.graph`, as in PyTorch's "whole-network capture" recipe; each
later step copies the batch into the captured input buffers and replays the graph, with no host work in
between. Shapes are fixed by the first batch, which is why this is a benchmark variant and not yet a mode
of `rknet train` (whose last batch of an epoch may be smaller). The warm-up steps before capture are undone
(weights and buffers restored, momentum zeroed, which is what SGD's first step sees), so the graphed steps
train exactly as plain steps from the same weights would: `python graphed_step.py` checks that on a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WARMUP_STEPS = 3  # steps on a side stream before capture: compilation, cuDNN's search, momentum buffers


class GraphedTrainingStep:
    """`step(images, labels)`: one SGD-with-momentum step of `model`, replayed from a CUDA graph."""

    def __init__(self, model: nn.Module, lr: float, compile_model: bool = True) -> None:
        self.model = torch.compile(model) if compile_model else model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, fused=True)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def _step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):  # as CUDA graphs need
            logits = self.model(self.images)
        F.cross_entropy(logits.float(), self.labels).backward()
        self.optimizer.step()

    def _capture(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = images.contiguous(memory_format=torch.channels_last).clone()
        self.labels = labels.clone()
        start = {name: value.detach().clone() for name, value in self.model.state_dict().items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self._step()
        with torch.no_grad():
            for name, value in self.model.state_dict().items():
                value.copy_(start[name])
            for state in self.optimizer.state.values():
                state["momentum_buffer"].zero_()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if self.graph is None:
            self._capture(images, labels)
        if images.shape != self.images.shape:
            raise ValueError(f"a captured step takes batches of shape {tuple(self.images.shape)}, "
                             f"got {tuple(images.shape)}")
        self.images.copy_(images)
        self.labels.copy_(labels)
        self.graph.replay()


def check(steps: int = 3, batch_size: int = 125) -> None:
    """Print how far each way of stepping lands from plain eager bf16 steps on channels_last batches, from
    the same weights over the same batches: the eager graph should match it to cuDNN's own variation (the
    capture adds no arithmetic), the compiled ones as closely as the fast path does (other bf16 roundings);
    eager steps on plain-layout batches (other convolution algorithms) show what rounding alone moves."""
    import copy

    import rknet
    from throughput import fast_training_step, parameter_update, synthetic_batches, training_step

    device = torch.device("cuda")
    torch.manual_seed(0)
    reference = rknet.ODENet(in_channels=3, num_classes=10).to(device)
    start = [p.detach().clone() for p in reference.parameters()]
    models = {name: copy.deepcopy(reference) for name in
              ("eager, plain layout", "graphed eager", "fast path (reduce-overhead)", "graphed compiled")}

    def eager(model: nn.Module, layout: torch.memory_format):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True)
        return lambda images, labels: training_step(model, optimizer, images.contiguous(memory_format=layout),
                                                    labels, bf16=True)

    steppers = {"reference": eager(reference, torch.channels_last),
                "eager, plain layout": eager(models["eager, plain layout"], torch.contiguous_format),
                "graphed eager": GraphedTrainingStep(models["graphed eager"], 0.01, compile_model=False),
                "fast path (reduce-overhead)": fast_training_step(models["fast path (reduce-overhead)"], device,
                                                                  0.01),
                "graphed compiled": GraphedTrainingStep(models["graphed compiled"], 0.01)}
    for images, labels in synthetic_batches(steps, batch_size, device, seed=1):
        for step in steppers.values():
            step(images, labels)

    expected = parameter_update(reference, start)
    print(f"after {steps} SGD steps at batch {batch_size}: |update| = {expected.norm().item():.3e}; "
          "|update - eager bf16 channels_last update| / |update|:")
    for name, model in models.items():
        difference = (parameter_update(model, start) - expected).norm() / expected.norm()
        print(f"graphed-check {name}: {difference.item():.2e}")


if __name__ == "__main__":
    check()
