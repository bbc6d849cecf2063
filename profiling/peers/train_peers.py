#!/usr/bin/env python3
"""Peers of genai's train module on the workloads of profiling/bench_train.cpp.

Diffusion training step (Gpu_DiffusionTrainStep / Cpu_DiffusionTrainStep): tiny-diffusion's
training loop on genai c3's model -- x 2 -> 128 -> 128 -> 128 -> 2, GELU(tanh), the 128-wide
sinusoidal time embedding concatenated to x (nn_peers.build) -- at batch 4096, float32: rows and
timesteps drawn with torch.randint, eps with torch.randn, x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps
(T = 1000, linear betas 1e-4 .. 0.02), F.mse_loss(model(x_t, t), eps), backward,
torch.optim.AdamW (lr 3e-3, weight decay 0.01), and the EMA of the weights (decay 0.999,
diffusers' EMAModel update with torch._foreach_sub_); steps/s.
  GPU: eager; the whole step in one CUDA graph (AdamW capturable, draws from the graph-safe
  generator); torch.compile(mode="max-autotune-no-cudagraphs") of the model.
  CPU: eager (threads: --threads, else the library's own).

Sampling with the network (Gpu_SampleMlp / Cpu_SampleMlp): DDPM (diffusers' step, fixed_small
variance) over the leading timesteps with the same model at random weights, points x steps /s.
  GPU: 10^5 points x 1000 steps, eager and the whole loop in one CUDA graph. CPU: 10^4 x 20.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from nn_peers import build, capture_step, record_variants  # noqa: E402


def schedule(torch, device, T=1000):
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    ab = torch.cumprod(1 - betas, 0)
    return betas, ab, ab.sqrt().float().to(device), (1 - ab).sqrt().float().to(device)


def moons(torch, n, device):
    """tiny-diffusion's moons (genai's two_moons), drawn with torch's generator."""
    g = torch.Generator().manual_seed(0)
    a = math.pi * torch.rand(n, generator=g)
    upper = torch.rand(n, generator=g) < 0.5
    x = torch.where(upper, torch.cos(a), 1 - torch.cos(a)) + 0.03 * torch.randn(n, generator=g)
    y = torch.where(upper, torch.sin(a), 0.5 - torch.sin(a)) + 0.03 * torch.randn(n, generator=g)
    return torch.stack([2 * (x + 0.3) - 1, 3 * (y + 0.3) - 1], 1).float().to(device)


def train_cases(torch, run, device, batch, timer):
    F = torch.nn.functional
    ours = (f"{'Gpu' if device == 'cuda' else 'Cpu'}_DiffusionTrainStep/batch:{batch}/"
            f"{'manual_time' if device == 'cuda' else 'real_time'}")
    shape = f"batch {batch}, 2-128x3-2 gelu_tanh"
    data = moons(torch, 20000, device)
    _, _, sa, sb = schedule(torch, device)

    def make(capturable=False, compiled=False):
        model = build(torch, "gelu_tanh", False).to(device)
        fwd = torch.compile(model, mode="max-autotune-no-cudagraphs") if compiled else model
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01,
                                capturable=capturable)
        params = list(model.parameters())
        ema = [p.detach().clone() for p in params]

        def step():
            i = torch.randint(0, data.shape[0], (batch,), device=device)
            t = torch.randint(0, 1000, (batch,), device=device)
            x0 = data[i]
            eps = torch.randn_like(x0)
            x_t = sa[t, None] * x0 + sb[t, None] * eps
            loss = F.mse_loss(fwd(x_t, t.float()), eps)
            opt.zero_grad(set_to_none=not capturable)
            loss.backward()
            opt.step()
            with torch.no_grad():  # diffusers' EMAModel.step
                weights = [p.detach() for p in params]
                torch._foreach_sub_(ema, torch._foreach_sub(ema, weights), alpha=1 - 0.999)
        return step

    variants = [("torch-eager", make)]
    if device == "cuda":
        variants.append(("torch-cudagraph", lambda: capture_step(torch, make(capturable=True))))
        variants.append(("torch-compile", lambda: make(compiled=True)))
    record_variants(run, "diffusion_train_step", shape, ours, variants, timer)


def sample_cases(torch, run, device, n, steps, timer):
    """DDPM from t_0 = (steps - 1) T / steps down to 0 (leading spacing), as genai's sampler."""
    ours = (f"Gpu_SampleMlp/n:{n}/steps:{steps}/graph:0/manual_time" if device == "cuda"
            else f"Cpu_SampleMlp/n:{n}/steps:{steps}/real_time")
    shape = f"{n} x {steps} steps"
    betas, ab, _, _ = schedule(torch, device)
    T = 1000
    ts = [(steps - 1 - i) * (T // steps) for i in range(steps)]
    coeffs = []
    for k, t in enumerate(ts):
        prev = ts[k + 1] if k + 1 < steps else -1
        a_t, a_prev = ab[t].item(), (ab[prev].item() if prev >= 0 else 1.0)
        beta = 1 - a_t / a_prev
        # x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t); mean = c0 x0 + ct x; sigma^2 fixed_small
        c0 = math.sqrt(a_prev) * beta / (1 - a_t)
        ct = math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)
        sigma = math.sqrt((1 - a_prev) / (1 - a_t) * beta) if prev >= 0 else 0.0
        coeffs.append((float(t), c0 / math.sqrt(a_t), math.sqrt(1 - a_t), ct, sigma))
    model = build(torch, "gelu_tanh", False).to(device).eval()
    x = torch.randn(n, 2, device=device)
    tt = torch.empty(n, device=device)

    def loop():
        with torch.no_grad():
            x.normal_()
            for t, a, b, ct, sigma in coeffs:
                eps = model(x, tt.fill_(t))
                x.mul_(a + ct).sub_(eps, alpha=a * b)
                if sigma > 0:
                    x.add_(torch.randn_like(x), alpha=sigma)

    variants = [("torch-eager", lambda: loop)]
    if device == "cuda":
        variants.append(("torch-cudagraph", lambda: capture_step(torch, loop)))
    record_variants(run, "ddpm_sample_mlp", shape, ours, variants, timer, float(n) * steps,
                    "point-steps/s")


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    torch = common.torch_cuda() if args.device == "cuda" else common.torch_cpu()
    if torch is None:
        return run.finish("train peers: no torch")
    gpu = args.device == "cuda"

    def timer(fn):
        return common.time_torch(run, torch, gpu, lambda i: fn())

    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = False  # ours is fp32 on the CUDA cores
        train_cases(torch, run, "cuda", 512 if args.quick else 4096, timer)
        sample_cases(torch, run, "cuda", 1000 if args.quick else 100000, 20 if args.quick else 1000,
                     timer)
    else:
        train_cases(torch, run, "cpu", 512 if args.quick else 4096, timer)
        sample_cases(torch, run, "cpu", 1000 if args.quick else 10000, 20, timer)
    return run.finish(f"train peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
