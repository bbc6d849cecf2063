#!/usr/bin/env python3
"""Peers of genai's conv module on the workloads of profiling/bench_conv.cpp.

3x3 convolution, stride 1, padding 1, 64 -> 64 channels (Gpu_Conv / Cpu_Conv):
torch.nn.functional.conv2d forward, and its backward (dx and dW, no bias) by autograd; FLOP/s
with 2 N K C R S P Q per GEMM (forward 1, backward 2), as ours.

The residual block of problem 4.4 (Gpu_ResidualBlock / Cpu_ResidualBlock), training mode:
out = x + bn2(conv2(relu(bn1(conv1(x))))), convolutions without bias (nn.Conv2d(bias=False),
nn.BatchNorm2d); forward, and a step = forward + backward of a fixed dy into every parameter's
.grad and into x.grad (set_to_none between steps). FLOP/s counts the convolutions only (2 and 6
GEMMs), as ours.

GPU (--device cuda): [32, 64, 56, 56] on cuDNN (torch.backends.cudnn.benchmark = True, so it
picks its fastest algorithm), each case in NCHW (channels-first, ours' layout) and channels-last
(NHWC, cuDNN's preferred layout for tensor cores), with TF32 on (PyTorch's default for
convolutions: math:0 of ours) and off (fp32: math:1).
CPU (--device cpu): [8, 64, 56, 56], PyTorch eager float32 (threads: --threads, else the
library's own), channels-first.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def conv_flop(n, c, h):
    return 2.0 * n * c * c * 9 * h * h


def block(torch, c):
    nn, F = torch.nn, torch.nn.functional

    class ResidualBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)

        def forward(self, x):
            return x + self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))

    return ResidualBlock()


def cases(torch, run, device, n, c, h, layouts, tf32_modes):
    F = torch.nn.functional
    gpu = device == "cuda"
    prefix = "Gpu" if gpu else "Cpu"
    for tf32 in tf32_modes:
        if gpu:
            torch.backends.cudnn.allow_tf32 = tf32
        math = 0 if tf32 else 1
        suffix = f"/math:{math}" if gpu else ""
        for layout in layouts:
            fmt = torch.channels_last if layout == "nhwc" else torch.contiguous_format
            peer = f"torch-{'cudnn' if gpu else 'cpu'}-{layout}{'-tf32' if tf32 and gpu else ''}"
            shape = f"{n}x{c}x{h}x{h}"
            g = torch.Generator().manual_seed(0)
            x = torch.randn(n, c, h, h, generator=g).to(device).to(memory_format=fmt)
            dy = torch.randn(n, c, h, h, generator=g).to(device).to(memory_format=fmt)
            w = (torch.randn(c, c, 3, 3, generator=g) / 24).to(device).to(memory_format=fmt)
            flop = conv_flop(n, c, h)
            ours = f"{prefix}_Conv/forward/N:{n}/C:{c}/H:{h}{suffix}"
            if run.wanted(peer, "conv_forward"):
                with torch.no_grad():
                    secs, reps = common.time_torch(run, torch, gpu, lambda i: F.conv2d(x, w, padding=1))
                run.record(peer, "conv_forward", shape, secs, flop, "FLOP/s", ours=ours, repeats=reps)
            xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
            y = F.conv2d(xg, wg, padding=1)

            def conv_backward(i):
                xg.grad = wg.grad = None
                y.backward(dy, retain_graph=True)

            ours = f"{prefix}_Conv/backward/N:{n}/C:{c}/H:{h}{suffix}"
            if run.wanted(peer, "conv_backward"):
                secs, reps = common.time_torch(run, torch, gpu, conv_backward)
                run.record(peer, "conv_backward", shape, secs, 2 * flop, "FLOP/s", ours=ours,
                           repeats=reps)
            model = block(torch, c).to(device).to(memory_format=fmt).train()
            xb = x.clone().requires_grad_(True)

            def forward(i):
                with torch.no_grad():
                    return model(x)

            def step(i):
                xb.grad = None
                for p in model.parameters():
                    p.grad = None
                model(xb).backward(dy)

            for case, fn, work in (("block_forward", forward, 2 * flop), ("block_step", step, 6 * flop)):
                ours = f"{prefix}_ResidualBlock/{'forward' if case == 'block_forward' else 'step'}" \
                       f"/N:{n}/C:{c}/H:{h}{suffix}"
                if not run.wanted(peer, case):
                    continue
                try:
                    secs, reps = common.time_torch(run, torch, gpu, fn)
                    run.record(peer, case, shape, secs, work, "FLOP/s", ours=ours, repeats=reps)
                except Exception as e:
                    run.skip(peer, case, shape, common.error_text(e), ours)


def main():
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    run = common.Run(args)
    torch = common.torch_cuda() if args.device == "cuda" else common.torch_cpu()
    if torch is None:
        return run.finish("conv peers: no torch")
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        n = 8 if args.quick else 32
        cases(torch, run, "cuda", n, 64, 56, ("nchw", "nhwc"), (True, False))
    else:
        cases(torch, run, "cpu", 2 if args.quick else 8, 64, 56, ("nchw",), (False,))
    return run.finish(f"conv peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
