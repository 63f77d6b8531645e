"""Training-step throughput and peak memory of rknet's default ODENet: eager, fast path, torchdiffeq.

Implementations, timed in interleaved rounds on the same synthetic CIFAR-shaped batches:
  rknet          eager fp32 (`ODENet.forward`)
  rknet-fast     the fast path, as `rknet train --fast` runs it: torch.compile (mode reduce-overhead = CUDA
                 graphs on a GPU), channels_last, fused SGD, bf16 autocast on a GPU and on a CPU with bf16
                 units (AVX512-BF16 or AMX; `rknet.common.cpu.has_bf16_units`), fp32 on other CPUs
  rknet-bf16     eager with bf16 autocast (no compilation): what bf16 alone gives
  torchdiffeq    the same network with each block integrated by torchdiffeq's odeint (below)
  rknet-fast-selective, rknet-fast-checkpoint   the fast path with `gradient="selective"` (convolution
                 outputs kept, the rest recomputed) and `gradient="checkpoint"` (each step recomputed):
                 the memory / speed trade-off
  euler, euler-fast   the same network with forward Euler over the same 4 steps: the RK4/Euler cost ratio
                 (ideal: 4, the number of layer evaluations per step)
  rknet-fast-max-autotune   the fast path compiled with mode max-autotune (Triton templates and kernel
                 configurations timed on the device; minutes of compilation): only when `--only` names it
  rknet-fast-templates   the fast path with only max-autotune's convolution and matrix-product templates
                 (Inductor's max_autotune_gemm, CUDA graphs kept): only when `--only` names it
  rknet-graph, rknet-graph-eager   (CUDA only, only when `--only` names them) the whole training step in one
                 CUDA graph (`graphed_step.py`), around the model compiled without CUDA graphs of its own, or
                 around the eager model: what the host's share of a fast-path step costs
On a GPU `torch.backends.cudnn.benchmark` is on for every implementation (as `rknet train --fast` sets it);
`--no-cudnn-benchmark` turns it off.
Also printed: ratios, and the time of a CIFAR-10 epoch (50,000 images) at the fast path's rate.

Both sides share one `rknet.ODENet(3, 10)` instance (opening, blocks, connectors, classifier, parameters).
The rknet side runs `ODENet.forward`: each block replays precomputed stage weights (no host sync). The
torchdiffeq side replaces each block's forward by

    torchdiffeq.odeint(lambda t, y: block.vector_field(float(t), y), y, t_span,
                       method="rk4_classic", options={"step_size": h})

which is what a torchdiffeq user would write: the controls are interpolated at run time from `t`, and
`float(t)` (like torchdiffeq's own step-count `.item()`) is a host synchronisation per call on a GPU.
Those costs are part of the torchdiffeq-style figure, on purpose. (`vector_field` always normalises with
batch statistics; the default network's TV norm has none, so eval mode matches too.) Both sides train the
same parameters, each with its own SGD (momentum 0.9), in interleaved rounds so machine noise hits both.
On CUDA the outputs agree less closely than on CPU (~1e-5 on an H200; cuDNN convolutions may use TF32).

torchdiffeq's method "rk4" is the 3/8 rule (`rk4_alt_step_func`, stages at 0, 1/3, 2/3, 1), not classic
RK4, and torchdiffeq 0.2.5 registers no fixed-grid classic RK4. So this script registers "rk4_classic",
torchdiffeq's own fixed-grid solver class with its own classic step `rk4_step_func` (stages at 0, 1/2,
1/2, 1), the tableau of rknet's "rk4"; the equality line checks that both networks then agree.

Usage: python benchmarks/throughput.py [--device cuda] [--batch-sizes 125,512] [--rounds 4] ...
"""

from __future__ import annotations

import argparse
import copy
import datetime
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchdiffeq
from torch import nn
from torchdiffeq._impl import fixed_grid, rk_common
from torchdiffeq._impl.misc import Perturb
from torchdiffeq._impl.odeint import SOLVERS

import rknet
from conv_backward import use_forward_input_gradients
from graphed_step import GraphedTrainingStep
from rknet import DynamicBlock
from rknet.common.cpu import cpu_model, has_bf16_units

CLASSIC_RK4 = "rk4_classic"
Batch = tuple[torch.Tensor, torch.Tensor]


class ClassicRK4(fixed_grid.RK4):
    """torchdiffeq's fixed-grid RK4 solver stepping with its classic-RK4 step instead of the 3/8 rule."""

    def _step_func(self, func, t0, dt, t1, y0):
        f0 = func(t0, y0, perturb=Perturb.NEXT if self.perturb else Perturb.NONE)
        return rk_common.rk4_step_func(func, t0, dt, t1, y0, f0=f0, perturb=self.perturb), f0


SOLVERS.setdefault(CLASSIC_RK4, ClassicRK4)


def uniform_step(block: DynamicBlock) -> float:
    """The block's state step size; torchdiffeq's `step_size` option needs a uniform grid."""
    if max(block.step_sizes) - min(block.step_sizes) > 1e-12:
        raise ValueError(f"torchdiffeq's step_size needs uniform state steps, got {block.step_sizes}")
    return block.step_sizes[0]


class TorchdiffeqODENet(nn.Module):
    """`net` with each dynamic block integrated by `torchdiffeq.odeint` over the block's `vector_field`."""

    def __init__(self, net: rknet.ODENet, method: str = CLASSIC_RK4) -> None:
        super().__init__()
        self.net = net
        self.method = method
        self.step_sizes = [uniform_step(block) for block in net.blocks]
        spans = [(block.t_states[0], block.t_states[-1]) for block in net.blocks]
        self.register_buffer("spans", torch.tensor(spans), persistent=False)

    def integrate(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """Block `index` of `net`, solved by torchdiffeq from its first to its last state time."""
        block = self.net.blocks[index]
        solution = torchdiffeq.odeint(lambda t, state: block.vector_field(float(t), state), y,
                                      self.spans[index], method=self.method,
                                      options={"step_size": self.step_sizes[index]})
        return solution[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net.opening_act(net.opening(x))
        for index, connector in enumerate(net.connectors):
            x = connector(self.integrate(index, x))
        return net.classifier(x.flatten(2).mean(dim=2))


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU model from /proc/cpuinfo with torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({torch.get_num_threads()} torch threads)"


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that the timer sees it; nothing to do on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_batches(count: int, batch_size: int, device: torch.device,
                      seed: int) -> list[Batch]:
    """`count` CIFAR-shaped batches: normal images (B, 3, 32, 32) and uniform labels in 0..9."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch_size, 3, 32, 32, generator=generator).to(device),
             torch.randint(0, 10, (batch_size,), generator=generator).to(device)) for _ in range(count)]


def eval_outputs(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """`model(images)` in eval mode without autograd; the model is left in train mode."""
    model.eval()
    with torch.no_grad():
        outputs = model(images)
    model.train()
    return outputs


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
                  labels: torch.Tensor, bf16: bool = False) -> None:
    """Forward (under bf16 autocast if `bf16`), cross-entropy, backward, optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(images)
    F.cross_entropy(logits.float(), labels).backward()
    optimizer.step()


def fast_training_step(model: nn.Module, device: torch.device, lr: float, mode: str | None = None,
                       options: dict | None = None) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """rknet's fast path: compiled (CUDA graphs on a GPU), channels_last, fused SGD, bf16 autocast on a GPU
    and on a CPU with bf16 units. `mode`, or Inductor `options` instead of a mode, override the compilation
    `rknet train --fast` uses."""
    cuda = device.type == "cuda"
    bf16 = cuda or has_bf16_units()
    compiled = (torch.compile(model, options=options) if options
                else torch.compile(model, mode=mode or ("reduce-overhead" if cuda else "default")))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, fused=True)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = compiled(images.contiguous(memory_format=torch.channels_last))
        F.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    return step


def parameter_update(model: nn.Module, start: list[torch.Tensor]) -> torch.Tensor:
    """How far training moved `model`'s parameters from `start` (their values before), as one flat vector."""
    return torch.cat([(p.detach() - s).flatten() for p, s in zip(model.parameters(), start)])


def peak_memory(step: Callable[[torch.Tensor, torch.Tensor], None], batches: list[Batch],
                device: torch.device) -> float | None:
    """Peak GPU memory (GB) over the first two training steps, everything included (weights, optimizer,
    batches, compilation and CUDA-graph recording). Not a later step's: what a CUDA graph keeps lives in its
    private pool, which the allocator's statistics stop counting once recording ends (measured on an H200,
    2026-11-28: 0.02-0.27 GB for every graphed variant after recording, against 0.36-3.3 GB for eager steps)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    for batch in batches[:2]:
        step(*batch)
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 1e9


def timed_round(step: Callable[[torch.Tensor, torch.Tensor], None], batches: list[Batch], warmup: int,
                steps: int, device: torch.device) -> float:
    """Images per second over `steps` training steps, after `warmup` untimed ones."""
    for index in range(warmup):
        step(*batches[index % len(batches)])
    synchronize(device)
    start = time.perf_counter()
    for index in range(steps):
        step(*batches[index % len(batches)])
    synchronize(device)
    return steps * batches[0][0].shape[0] / (time.perf_counter() - start)


# Defaults per device type: CPU runs stay within a few minutes on 2 cores, GPU runs need more steps to settle.
DEFAULTS = {"cpu": {"batch_sizes": [64], "warmup": 1, "steps": 3},
            "cuda": {"batch_sizes": [125, 512], "warmup": 5, "steps": 20}}
CIFAR10_TRAIN = 50_000
# Implementations that run only when `--only` names them (max-autotune compiles for minutes; graphs need CUDA).
OPT_IN = ("rknet-fast-max-autotune", "rknet-fast-templates", "rknet-graph", "rknet-graph-eager")
# max-autotune's convolution and matrix-product templates alone, without its search over every fused kernel's
# configuration (coordinate descent), to compile in less time than max-autotune
TEMPLATES = {"max_autotune_gemm": True}


def parse_args() -> argparse.Namespace:
    """Command-line settings, with per-device defaults filled in for those not given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    parser.add_argument("--batch-sizes", type=lambda text: [int(b) for b in text.split(",")],
                        help="comma-separated; default 64 on CPU, 125,512 on CUDA")
    parser.add_argument("--warmup", type=int, help="untimed steps per round; default 1 on CPU, 5 on CUDA")
    parser.add_argument("--steps", type=int, help="timed steps per round; default 3 on CPU, 20 on CUDA")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per implementation, interleaved")
    parser.add_argument("--skip", default="", help="comma-separated implementations to leave out")
    parser.add_argument("--only", default="", help="comma-separated implementations to run, opt-in ones "
                        f"included ({', '.join(OPT_IN)}); default all but the opt-in ones")
    parser.add_argument("--no-equality", dest="equality", action="store_false",
                        help="skip the rknet / torchdiffeq equality check")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (momentum 0.9)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--conv-backward", choices=("cudnn", "forward"), default="cudnn",
                        help="forward: the layers' convolutions compute their input gradients as forward "
                        "convolutions, for this whole process (conv_backward.py, an experiment)")
    parser.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false",
                        help="leave cuDNN's algorithm search off (on by default on a GPU)")
    args = parser.parse_args()
    for name, value in DEFAULTS["cuda" if args.device.startswith("cuda") else "cpu"].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def print_header(args: argparse.Namespace, device: torch.device, net: rknet.ODENet) -> None:
    """Date, device, versions and settings, to paste above the figures."""
    parameters = sum(p.numel() for p in net.parameters())
    print(f"date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    units = "" if device.type == "cuda" else f"; bf16 units: {'yes' if has_bf16_units() else 'no'}"
    print(f"device: {device_name(device)}{units}")
    print(f"torch {torch.__version__}, torchdiffeq {torchdiffeq.__version__}, rknet {rknet.__version__}")
    print(f"default ODENet ({parameters:,} parameters), {args.warmup} warmup + {args.steps} timed steps per "
          f"round, {args.rounds} rounds each, interleaved; cudnn.benchmark {torch.backends.cudnn.benchmark}; "
          f"convolution input gradients: {args.conv_backward}")


def print_equality(net: rknet.ODENet, twin: TorchdiffeqODENet, images: torch.Tensor) -> None:
    """How far the torchdiffeq network is from rknet's, with classic RK4 and with torchdiffeq's 'rk4'."""
    reference = eval_outputs(net, images)
    differences = [(eval_outputs(model, images) - reference).abs().max().item()
                   for model in (twin, TorchdiffeqODENet(net, "rk4").to(images.device))]
    print(f"max |rknet - torchdiffeq| on a batch in eval mode (outputs up to "
          f"{reference.abs().max().item():.2e}): {differences[0]:.2e} with {CLASSIC_RK4}; "
          f"with torchdiffeq's 'rk4' (the 3/8 rule) {differences[1]:.2e}")


def print_table(batch_size: int, rates: dict[str, list[float]], memory: dict[str, float | None]) -> None:
    """Median images/s, peak memory and ratios of every implementation at one batch size."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\nbatch {batch_size}")
    print("| implementation | images/s (median) | rounds | peak memory | vs torchdiffeq | vs rknet eager |")
    print("|---|---|---|---|---|---|")
    for name, median in medians.items():
        rounds = ", ".join(f"{rate:.0f}" for rate in rates[name])
        gb = "-" if memory.get(name) is None else f"{memory[name]:.2f} GB"
        versus = {base: f"{median / medians[base]:.2f}x" if base in medians else "-"
                  for base in ("torchdiffeq", "rknet")}
        print(f"| {name} | {median:,.0f} | {rounds} | {gb} | {versus['torchdiffeq']} | {versus['rknet']} |")
    for suffix in ("", "-fast"):
        if f"rknet{suffix}" in medians and f"euler{suffix}" in medians:
            print(f"RK4/Euler cost ratio{suffix or ' (eager)'}: "
                  f"{medians[f'euler{suffix}'] / medians[f'rknet{suffix}']:.2f} (ideal 4)")
    fastest_rk4 = max(medians.get("rknet-fast", 0.0), medians.get("rknet", 0.0))
    if fastest_rk4:
        seconds = CIFAR10_TRAIN / fastest_rk4
        print(f"CIFAR-10 epoch ({CIFAR10_TRAIN:,} images) at rknet's best RK4 rate: {seconds:.2f} s")


def implementations(args: argparse.Namespace, device: torch.device
                    ) -> tuple[dict[str, Callable[[torch.Tensor, torch.Tensor], None]], rknet.ODENet, nn.Module]:
    """The training steps to time, each on its own copy of the same initial weights."""
    torch.manual_seed(args.seed)
    net = rknet.ODENet(in_channels=3, num_classes=10).to(device)
    twin = TorchdiffeqODENet(copy.deepcopy(net)).to(device)

    def variant(**options: str) -> rknet.ODENet:
        """The same network and weights with other options (method, gradient strategy)."""
        other = rknet.ODENet(in_channels=3, num_classes=10, **options).to(device)
        other.load_state_dict(net.state_dict())
        return other

    def eager(model: nn.Module, bf16: bool = False) -> Callable[[torch.Tensor, torch.Tensor], None]:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        return functools.partial(training_step, model, optimizer, bf16=bf16)

    def fast(model: nn.Module, mode: str | None = None,
             options: dict | None = None) -> Callable[[torch.Tensor, torch.Tensor], None]:
        return fast_training_step(model, device, args.lr, mode, options)

    steps = {"rknet": lambda: eager(net), "rknet-fast": lambda: fast(copy.deepcopy(net)),
             "rknet-bf16": lambda: eager(copy.deepcopy(net), bf16=True),
             "rknet-fast-selective": lambda: fast(variant(gradient="selective")),
             "rknet-fast-checkpoint": lambda: fast(variant(gradient="checkpoint")),
             "torchdiffeq": lambda: eager(twin), "euler": lambda: eager(variant(method="euler")),
             "euler-fast": lambda: fast(variant(method="euler")),
             "rknet-fast-max-autotune": lambda: fast(copy.deepcopy(net), "max-autotune"),
             "rknet-fast-templates": lambda: fast(copy.deepcopy(net), options=TEMPLATES | {
                 "triton.cudagraphs": device.type == "cuda"}),
             "rknet-graph": lambda: GraphedTrainingStep(copy.deepcopy(net), args.lr),
             "rknet-graph-eager": lambda: GraphedTrainingStep(copy.deepcopy(net), args.lr, compile_model=False)}
    unknown = {name for name in args.skip.split(",") + args.only.split(",") if name} - set(steps)
    if unknown:
        raise SystemExit(f"unknown implementations {sorted(unknown)}; valid: {', '.join(steps)}")
    chosen = ([name for name in args.only.split(",") if name] if args.only
              else [name for name in steps if name not in OPT_IN])
    return {name: steps[name]() for name in chosen if name not in args.skip.split(",")}, net, twin


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    # Each compiled model as a training run compiles it alone: static shapes, however many models came before
    # (otherwise a later model's differing sizes make dynamo recompile it with dynamic shapes).
    torch._dynamo.config.automatic_dynamic_shapes = False
    torch._dynamo.config.cache_size_limit = 64
    if args.conv_backward == "forward":
        use_forward_input_gradients()
    torch.backends.cudnn.benchmark = device.type == "cuda" and args.cudnn_benchmark
    steps, net, twin = implementations(args, device)
    print_header(args, device, net)
    for batch_size in args.batch_sizes:
        batches = synthetic_batches(4, batch_size, device, args.seed)
        if batch_size == args.batch_sizes[0] and args.equality:
            print_equality(net, twin, batches[0][0])
        memory = {name: peak_memory(step, batches, device) for name, step in steps.items()}
        rates: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                rates[name].append(timed_round(step, batches, args.warmup, args.steps, device))
        print_table(batch_size, rates, memory)


if __name__ == "__main__":
    main()
