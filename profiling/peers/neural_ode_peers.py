#!/usr/bin/env python3
"""Peers of genai::NeuralOde on the workloads of profiling/bench_neural_ode.cpp.

The workload: d = 2, f(h, t) = MLP([h, t]) with widths 3 -> 64 -> 64 -> 2 and tanh, float32,
h0 ~ N(0, I), t from 0 to 1 in `steps` RK4 steps (dt = 1 / steps), the loss sum(w * h(1)).
  forward   h(1) without a gradient
  backprop  the backward through the steps (autograd), timed alone: the forward once, then
            backward(retain_graph=True) per call
  adjoint   the adjoint backward, timed alone the same way
Rates: steps/s and sample-steps/s (batch x steps per second), as genai_bench's counters.

CPU (--device cpu): batch 256, 100 steps: torchdiffeq.odeint / odeint_adjoint when importable
  (method "rk4", which is torchdiffeq's 3/8 rule: the same four stages per step as our classic
  RK4), and the same steps as plain PyTorch loops (classic RK4; the adjoint as an explicit
  augmented RK4 backwards, its vector-Jacobian products from torch.autograd.grad).
GPU (--device cuda): batch 1024 and 65536, 100 steps: torchdiffeq when importable, else (the GPU
  machine has none) the plain PyTorch loops, said in the peer's name; and the memory of 4.3:
  torch.cuda.max_memory_allocated over one forward + backward at 10, 100, 1000 steps (batch
  1024; --quick: 10 and 100) for backprop and the adjoint (beside Gpu_NeuralOdeMemory's
  pool_bytes).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

WIDTHS = [3, 64, 64, 2]
RK4_C = [0.0, 0.5, 0.5, 1.0]
RK4_A = [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]]
RK4_B = [1 / 6, 1 / 3, 1 / 3, 1 / 6]


def ours_name(mode, steps, batch, gpu, graphs=1):
    if gpu:
        return f"Gpu_NeuralOde/{mode}/steps:{steps}/batch:{batch}/graphs:{graphs}/manual_time"
    return f"Cpu_NeuralOde/{mode}/steps:{steps}/batch:{batch}/real_time"


def make_func(torch, device):
    """f(t, h) = MLP([h, t]) as a torch module (torchdiffeq's calling convention)."""
    torch.manual_seed(3)
    layers = []
    for i in range(len(WIDTHS) - 1):
        layers.append(torch.nn.Linear(WIDTHS[i], WIDTHS[i + 1]))
        if i + 2 < len(WIDTHS):
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers).to(device)

    class Func(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t, h):  # t: a 0-d tensor (torchdiffeq) or a float (the loops)
            col = t.expand(h.shape[0], 1) if torch.is_tensor(t) else h.new_full((h.shape[0], 1), t)
            return self.net(torch.cat([h, col], 1))

    return Func()


def rk4_loop(func, h, steps, torch):
    """The classic RK4 steps over [0, 1] (autograd records them when enabled)."""
    dt = 1.0 / steps
    for n in range(steps):
        t = n * dt
        k = []
        for s in range(4):
            ys = h
            for j, a in enumerate(RK4_A[s]):
                if a:
                    ys = ys + (dt * a) * k[j]
            k.append(func(t + RK4_C[s] * dt, ys))
        h = h + dt * sum(b * kj for b, kj in zip(RK4_B, k))
    return h


def adjoint_loop(func, h1, w, steps, torch):
    """The adjoint method by hand: z = [h, a, g] from t = 1 back to 0 in RK4 steps, with
    dz/dt = [f, -a^T df/dh, -a^T df/dtheta] from torch.autograd.grad. Returns (dL/dh0, grads)."""
    params = list(func.parameters())
    dt = -1.0 / steps

    def field(t, h, a):
        with torch.enable_grad():
            h = h.detach().requires_grad_(True)
            out = func(t, h)
            vjp = torch.autograd.grad(out, [h] + params, a)
        return out.detach(), [-v for v in vjp]

    h, a, g = h1.detach(), w, [torch.zeros_like(p) for p in params]
    for n in range(steps):
        t = 1.0 + n * dt
        kh, ka, kg = [], [], []
        for s in range(4):
            hs, as_, gs = h, a, g
            for j, c in enumerate(RK4_A[s]):
                if c:
                    hs = hs + (dt * c) * kh[j]
                    as_ = as_ + (dt * c) * ka[j]
            fh, vjp = field(t + RK4_C[s] * dt, hs, as_)
            kh.append(fh)
            ka.append(vjp[0])
            kg.append(vjp[1:])
        h = h + dt * sum(b * k for b, k in zip(RK4_B, kh))
        a = a + dt * sum(b * k for b, k in zip(RK4_B, ka))
        g = [gi + dt * sum(b * k[i] for b, k in zip(RK4_B, kg)) for i, gi in enumerate(g)]
    return a, g


def timer_for(run, torch, gpu):
    if gpu:
        return lambda fn: common.time_torch_cuda(torch, fn, run.warmup, run.repeats, run.budget)
    return lambda fn: common.time_cpu(fn, run.warmup, run.repeats, run.budget)


def run_case(run, torch, tde, device, batch, steps):
    gpu = device == "cuda"
    timer = timer_for(run, torch, gpu)
    func = make_func(torch, device)
    gen = torch.Generator(device="cpu").manual_seed(16)
    h0 = torch.randn(batch, 2, generator=gen).to(device)
    w = torch.randn(batch, 2, generator=gen).to(device)
    t = torch.tensor([0.0, 1.0], device=device)
    shape = f"{batch}x2, {steps} steps"
    opts = {"method": "rk4", "options": {"step_size": 1.0 / steps}}
    peers = []
    if tde is not None:
        def fwd(grad):
            with torch.set_grad_enabled(grad):
                return tde.odeint(func, h0, t, **opts)[-1]

        def fwd_adjoint():
            return tde.odeint_adjoint(func, h0, t, **opts)[-1]

        peers.append(("torchdiffeq", fwd, fwd_adjoint, "rk4 (the 3/8 rule)"))

    def loop_fwd(grad):
        with torch.set_grad_enabled(grad):
            return rk4_loop(func, h0, steps, torch)

    peers.append((f"pytorch {device} loop", loop_fwd, None, "classic RK4"))
    for peer, fwd, fwd_adjoint, note in peers:
        for mode in ("forward", "backprop", "adjoint"):
            if not run.wanted(peer, mode):
                continue
            try:
                if mode == "forward":
                    call = lambda _i: fwd(False)  # noqa: E731
                elif mode == "backprop":
                    out = fwd(True)
                    loss = (w * out).sum()
                    call = lambda _i, loss=loss: loss.backward(retain_graph=True)  # noqa: E731
                elif fwd_adjoint is not None:
                    out = fwd_adjoint()
                    loss = (w * out).sum()
                    call = lambda _i, loss=loss: loss.backward(retain_graph=True)  # noqa: E731
                else:
                    h1 = fwd(False)
                    call = lambda _i, h1=h1: adjoint_loop(func, h1, w, steps, torch)  # noqa: E731
                secs, n = timer(call)
                run.record(peer, mode, shape, secs, batch * steps, "sample-steps/s",
                           ours=ours_name(mode, steps, batch, gpu), repeats=n, note=note,
                           extra={"steps_per_s": steps / secs})
            except Exception as e:
                run.skip(peer, mode, shape, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                         ours=ours_name(mode, steps, batch, gpu))


def run_memory(run, torch, tde, batch, step_counts):
    """4.3 on the GPU: peak bytes over one forward + backward, backprop against the adjoint."""
    func = make_func(torch, "cuda")
    gen = torch.Generator(device="cpu").manual_seed(16)
    h0 = torch.randn(batch, 2, generator=gen).cuda()
    w = torch.randn(batch, 2, generator=gen).cuda()
    t = torch.tensor([0.0, 1.0], device="cuda")
    peer = "torchdiffeq" if tde is not None else "pytorch cuda loop"
    for steps in step_counts:
        opts = {"method": "rk4", "options": {"step_size": 1.0 / steps}}
        for mode in ("backprop", "adjoint"):
            if not run.wanted(peer, f"memory {mode}"):
                continue
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            if tde is not None:
                solve = tde.odeint if mode == "backprop" else tde.odeint_adjoint
                (w * solve(func, h0, t, **opts)[-1]).sum().backward()
            elif mode == "backprop":
                (w * rk4_loop(func, h0, steps, torch)).sum().backward()
            else:
                with torch.no_grad():
                    h1 = rk4_loop(func, h0, steps, torch)
                adjoint_loop(func, h1, w, steps, torch)
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
            name = f"Gpu_NeuralOdeMemory/{mode}/steps:{steps}/batch:{batch}/iterations:3/manual_time"
            run.record(peer, f"memory {mode}", f"{batch}x2, {steps} steps", None, None, "bytes",
                       ours=name, extra={"peak_bytes": peak})


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    tde = common.try_import("torchdiffeq")
    if args.device == "cuda":
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            if tde is None:
                print("torchdiffeq absent: its cases run as the equivalent plain PyTorch loops "
                      "('pytorch cuda loop' rows)", flush=True)
            for batch in ([1024] if args.quick else [1024, 65536]):
                run_case(run, torch, tde, "cuda", batch, 100)
            run_memory(run, torch, tde, 1024, (10, 100) if args.quick else (10, 100, 1000))
    else:
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            run_case(run, torch, tde, "cpu", 64 if args.quick else 256, 20 if args.quick else 100)
    return run.finish(f"Neural ODE peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
