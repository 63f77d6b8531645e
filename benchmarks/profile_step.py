"""Where the time of one fast-path training step goes: kernels grouped by kind, and the top kernels.

Runs the fast path of `benchmarks/throughput.py` (compiled, CUDA graphs, bf16, channels_last on a GPU;
compiled fp32 on a CPU) on the default ODENet with synthetic CIFAR-shaped batches, profiles a few steps
with `torch.profiler`, and prints the device time per kind of kernel (convolutions, the compiler's fused
kernels, optimizer, copies, other) and the most expensive kernels. On a CPU the same tables show CPU ops.

Usage: python benchmarks/profile_step.py [--device cuda] [--batch-size 512] [--gradient backprop] ...
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

import rknet
from conv_backward import use_forward_input_gradients
from graphed_step import GraphedTrainingStep
from throughput import TEMPLATES, fast_training_step, synchronize, synthetic_batches

# Kernel kinds by name, first match wins (cuDNN/CUTLASS convolution kernels, Inductor's Triton kernels or,
# on a CPU, its compiled graph's own time, the fused optimizer, copies and fills).
KINDS = (("convolution", re.compile(r"conv|cudnn|cutlass|implicit_gemm|xmma|wgrad|dgrad|fprop|mkldnn|sm\d+_",
                                    re.I)),
         ("fused (compiler)", re.compile(r"^triton_|cpp_fused|CompiledFxGraph", re.I)),
         ("optimizer", re.compile(r"sgd|adam|multi_tensor|foreach", re.I)),
         ("copy / fill", re.compile(r"copy|memcpy|memset|fill|\bcat\b", re.I)))


def kind(name: str) -> str:
    return next((label for label, pattern in KINDS if pattern.search(name)), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default 512 on CUDA, 32 on CPU")
    parser.add_argument("--gradient", default="backprop", choices=rknet.supported_gradients(rknet.DynamicBlock))
    parser.add_argument("--warmup", type=int, default=None, help="default 10 on CUDA, 2 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="profiled steps; default 10 on CUDA, 2 on CPU")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--step", choices=("fast", "graph"), default="fast",
                        help="the fast path, or the whole step in one CUDA graph (graphed_step.py, CUDA only)")
    parser.add_argument("--conv-backward", choices=("cudnn", "forward"), default="cudnn",
                        help="forward: convolution input gradients as forward convolutions (conv_backward.py)")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile mode; default reduce-overhead on CUDA, default on CPU")
    parser.add_argument("--templates", action="store_true",
                        help="compile as throughput.py's rknet-fast-templates (convolution templates alone)")
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    batch_size = args.batch_size or (512 if cuda else 32)
    warmup, steps = args.warmup or (10 if cuda else 2), args.steps or (10 if cuda else 2)
    torch.backends.cudnn.benchmark = cuda
    if args.conv_backward == "forward":
        use_forward_input_gradients()

    torch.manual_seed(0)
    model = rknet.ODENet(in_channels=3, num_classes=10, gradient=args.gradient).to(device)
    step = (GraphedTrainingStep(model, lr=0.01) if args.step == "graph"
            else fast_training_step(model, device, lr=0.01, mode=args.compile_mode,
                                    options=TEMPLATES | {"triton.cudagraphs": cuda} if args.templates else None))
    batches = synthetic_batches(2, batch_size, device, seed=0)
    for index in range(warmup):
        step(*batches[index % 2])
    synchronize(device)
    start = time.perf_counter()
    for index in range(steps):
        step(*batches[index % 2])
    synchronize(device)
    wall = (time.perf_counter() - start) / steps
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as profiler:
        for index in range(steps):
            step(*batches[index % 2])
        synchronize(device)

    own = (lambda event: event.self_device_time_total) if cuda else (lambda event: event.self_cpu_time_total)
    # On a GPU, Inductor's "## Call CompiledFxGraph ... ##" ranges are annotations that the profiler credits
    # with the device time of the kernels inside them (CUDA-graph replays): counted once, as those kernels.
    events = [event for event in profiler.key_averages()
              if own(event) > 0 and not (cuda and event.key.startswith("## "))]
    total = sum(own(event) for event in events)
    compiled = "templates" if args.templates else args.compile_mode or "as --fast"
    print(f"{device} ({torch.cuda.get_device_name(device) if cuda else 'cpu'}), {args.step} step, compile mode "
          f"{compiled}, input gradients {args.conv_backward}, batch {batch_size}, gradient "
          f"{args.gradient}, {steps} profiled steps: {total / steps / 1e3:.2f} ms of "
          f"{'device' if cuda else 'CPU'} time per step, {batch_size * steps / (total / 1e6):,.0f} images/s "
          f"if nothing else ran")
    print(f"wall-clock time per step without the profiler: {wall * 1e3:.2f} ms ({batch_size / wall:,.0f} "
          f"images/s); the {'device' if cuda else 'CPU'} is busy {100 * total / steps / 1e6 / wall:.0f} % of it\n")
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for event in events:
        by_kind[kind(event.key)][0] += own(event)
        by_kind[kind(event.key)][1] += event.count
    print("| kind | ms per step | share | calls per step |\n|---|---|---|---|")
    for label, (spent, count) in sorted(by_kind.items(), key=lambda item: -item[1][0]):
        print(f"| {label} | {spent / steps / 1e3:.3f} | {100 * spent / total:.1f} % | {count / steps:.0f} |")
    print("\n| top kernels | kind | ms per step | share | calls per step |\n|---|---|---|---|---|")
    for event in sorted(events, key=lambda event: -own(event))[:args.top]:
        print(f"| {event.key[:90]} | {kind(event.key)} | {own(event) / steps / 1e3:.3f} | "
              f"{100 * own(event) / total:.1f} % | {event.count / steps:.0f} |")


if __name__ == "__main__":
    main()
