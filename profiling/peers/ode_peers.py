#!/usr/bin/env python3
"""Peers of genai::ode_solve on the workloads of profiling/bench_ode.cpp.

The problem: torchdiffeq's ode_demo spiral, dy/dt = (y^3) A, A = [[-0.1, 2.0], [-2.0, -0.1]],
from y0 = (1, 0) + N(0, 0.2^2 I) per row, over [0, 1]: fixed-step methods with dt = 0.01
(100 steps), dopri5 with rtol 1e-3, atol 1e-6 (SciPy's defaults). Each call starts from y0.
Rate: sample-steps/s = rows * accepted steps / seconds (for a batch integrated as one system --
SciPy's solve_ivp, torchdiffeq, the PyTorch dopri5 loop -- the batch's steps times its rows).

GPU (--device cuda), float32, 1e5 rows (and 2^20) (Gpu_Ode/<method>/rows:N/manual_time):
  torchdiffeq.odeint (euler, midpoint, rk4 -- torchdiffeq's rk4 is the 3/8 rule, beside our
  rk4_38 -- and dopri5) when importable; otherwise (the GPU machine has no torchdiffeq) the same
  steps as a plain PyTorch loop, said in the peer's name: batched tensor operations per stage,
  one Python iteration per step, and for dopri5 torchdiffeq's scheme (one step size for the
  whole batch, RMS error norm over all of it, SciPy's controller).
CPU (--device cpu), float64, 4096 rows (Cpu_Ode/<method>/rows:4096/real_time):
  SciPy solve_ivp(method="RK45") on the batch as one vectorised system; solve_ivp row by row
  (256 rows, the per-sample step control ours does, extrapolated as a rate); NumPy and PyTorch
  CPU loops of the fixed-step methods and the PyTorch dopri5 loop; torchdiffeq on the CPU when
  importable.
Differences: our rows each choose their own steps (dopri5); the batch peers take the steps the
worst row needs, so at equal tolerance they take more sample-steps of work than they are
credited here (their rate counts rows x batch steps).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

A = [[-0.1, 2.0], [-2.0, -0.1]]
T1 = 1.0
DT = 0.01
RTOL, ATOL = 1e-3, 1e-6
FIXED = {  # name -> (c, a rows, b)
    "euler": ([0.0], [[]], [1.0]),
    "midpoint": ([0.0, 0.5], [[], [0.5]], [0.0, 1.0]),
    "rk4": ([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]],
            [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    "rk4_38": ([0.0, 1 / 3, 2 / 3, 1.0], [[], [1 / 3], [-1 / 3, 1.0], [1.0, -1.0, 1.0]],
               [1 / 8, 3 / 8, 3 / 8, 1 / 8]),
}
DOPRI5_C = [0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1]
DOPRI5_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
            [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
DOPRI5_E = [-71 / 57600, 0, 71 / 16695, -71 / 1920, 17253 / 339200, -22 / 525, 1 / 40]
# torchdiffeq's method names for ours (its "rk4" is Kutta's 3/8 rule).
TORCHDIFFEQ = {"euler": "euler", "midpoint": "midpoint", "rk4_38": "rk4", "dopri5": "dopri5"}


def ours_name(method, rows, gpu):
    if gpu:
        return f"Gpu_Ode/{method}/rows:{rows}/manual_time"
    return f"Cpu_Ode/{method}/rows:{rows}/real_time"


def starts(np, rows, seed=16):
    y = np.random.default_rng(seed).normal(0.0, 0.2, size=(rows, 2))
    y[:, 0] += 1.0
    return y


# ---- loops over a batch (NumPy or PyTorch: `mm` multiplies by A) -------------------------------

def fixed_loop(method, f, y, steps, dt):
    c, a, b = FIXED[method]
    t = 0.0
    for _ in range(steps):
        k = []
        for s in range(len(c)):
            ys = y
            for j, aij in enumerate(a[s]):
                if aij:
                    ys = ys + (dt * aij) * k[j]
            k.append(f(t + c[s] * dt, ys))
        for j, bj in enumerate(b):
            if bj:
                y = y + (dt * bj) * k[j]
        t += dt
    return y


def dopri5_loop(f, y, t1, rtol, atol, rms, absmax):
    """Adaptive dopri5 on the whole batch (torchdiffeq's scheme: one step for all rows, RMS of
    err / (atol + rtol max(|y0|, |y1|)) over every element; SciPy's controller and Hairer's
    first step). Returns (y, accepted steps)."""
    t, k0 = 0.0, f(0.0, y)
    scale = atol + rtol * absmax(y)
    d0, d1 = rms(y / scale), rms(k0 / scale)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    d2 = rms((f(h0, y + h0 * k0) - k0) / scale) / h0
    h = min(100 * h0, max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** 0.2)
    accepted = 0
    while t < t1:
        h = min(h, t1 - t)
        rejected = False
        while True:
            k = [k0]
            for s in range(1, 7):
                ys = y
                for j, aij in enumerate(DOPRI5_A[s]):
                    if aij:
                        ys = ys + (h * aij) * k[j]
                k.append(f(t + DOPRI5_C[s] * h, ys))
            y1 = ys
            err = sum(ej * kj for ej, kj in zip(DOPRI5_E, k) if ej) * h
            norm = float(rms(err / (atol + rtol * absmax(y, y1))))
            factor = 10.0 if norm == 0 else min(10.0, 0.9 * norm ** -0.2)
            if norm < 1:
                t, y, k0 = t + h, y1, k[6]
                h *= min(1.0, factor) if rejected else factor
                accepted += 1
                break
            h *= max(0.2, 0.9 * norm ** -0.2)
            rejected = True
    return y, accepted


def timer_for(run, torch, gpu):
    """The timing function of a peer: CUDA events on the GPU, the wall clock on the CPU."""
    if gpu:
        return lambda fn: common.time_torch_cuda(torch, fn, run.warmup, run.repeats, run.budget)
    return lambda fn: common.time_cpu(fn, run.warmup, run.repeats, run.budget)


def run_loops(run, peer, f, y0, rows, rms, absmax, timer, gpu, dtype):
    """Every method as a loop over the batch y0 (NumPy or PyTorch), one recorded row each."""
    shape = f"{rows}x2"
    for method in list(FIXED) + ["dopri5"]:
        if not run.wanted(peer, method):
            continue
        steps = {"n": round(T1 / DT)}
        if method == "dopri5":
            def call(_i, steps=steps):
                _, steps["n"] = dopri5_loop(f, y0, T1, RTOL, ATOL, rms, absmax)
        else:
            def call(_i, method=method):
                fixed_loop(method, f, y0, round(T1 / DT), DT)
        try:
            secs, n = timer(call)
            run.record(peer, method, shape, secs, rows * steps["n"], "sample-steps/s",
                       ours=ours_name(method, rows, gpu), dtype=dtype, repeats=n,
                       note="one step size for the batch" if method == "dopri5" else None)
        except Exception as e:
            run.skip(peer, method, shape, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                     ours=ours_name(method, rows, gpu))


# ---- PyTorch -----------------------------------------------------------------------------------

def run_torch(run, torch, device, rows, dtype, label):
    tdt = getattr(torch, dtype)
    np = common.numpy_cpu()
    a = torch.tensor(A, dtype=tdt, device=device)
    y0 = torch.tensor(starts(np, rows), dtype=tdt, device=device)

    def f(_t, y):
        return torch.mm(y ** 3, a)

    def rms(x):
        return torch.sqrt(torch.mean(x * x)).item()

    def absmax(x, z=None):
        return x.abs() if z is None else torch.maximum(x.abs(), z.abs())

    gpu = device == "cuda"
    run_loops(run, f"{label} loop", f, y0, rows, rms, absmax, timer_for(run, torch, gpu), gpu, dtype)


def run_torchdiffeq(run, torch, tde, device, rows, dtype):
    tdt = getattr(torch, dtype)
    np = common.numpy_cpu()
    a = torch.tensor(A, dtype=tdt, device=device)
    y0 = torch.tensor(starts(np, rows), dtype=tdt, device=device)
    t = torch.tensor([0.0, T1], dtype=tdt, device=device)
    gpu = device == "cuda"
    timer = timer_for(run, torch, gpu)

    class Spiral(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.nfe = 0

        def forward(self, _t, y):
            self.nfe += 1
            return torch.mm(y ** 3, a)

    for ours, method in TORCHDIFFEQ.items():
        peer = "torchdiffeq"
        case = f"{method} (ours: {ours})"
        if not run.wanted(peer, case):
            continue
        func = Spiral()
        kw = {"method": method}
        if method == "dopri5":
            kw.update(rtol=RTOL, atol=ATOL)
        else:
            kw["options"] = {"step_size": DT}
        try:
            with torch.no_grad():
                secs, n = timer(lambda _i: tde.odeint(func, y0, t, **kw))
                func.nfe = 0
                tde.odeint(func, y0, t, **kw)
            # Steps from the evaluations: fixed grids take `stages` per step; dopri5 2 for its
            # first step and 6 per attempt (rejected ones included: a slight credit).
            stages = {"euler": 1, "midpoint": 2, "rk4": 4}.get(method)
            steps = func.nfe // stages if stages else max(1, (func.nfe - 2) // 6)
            run.record(peer, case, f"{rows}x2", secs, rows * steps, "sample-steps/s",
                       ours=ours_name(ours, rows, gpu), dtype=dtype, repeats=n,
                       extra={"nfe": func.nfe})
        except Exception as e:
            run.skip(peer, case, f"{rows}x2", f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                     ours=ours_name(ours, rows, gpu))


# ---- SciPy and NumPy (CPU) ---------------------------------------------------------------------

def run_scipy(run, np, rows, loop_rows):
    try:
        from scipy.integrate import solve_ivp
    except Exception as e:
        print(f"scipy not available ({e}): skipping solve_ivp", flush=True)
        return
    a = np.array(A)
    y0 = starts(np, rows)

    def f_batch(_t, y):
        return ((y.reshape(-1, 2) ** 3) @ a).reshape(-1)

    if run.wanted("scipy solve_ivp (batch)", "dopri5"):
        out = {}

        def call(_i):
            out["sol"] = solve_ivp(f_batch, (0.0, T1), y0.reshape(-1), method="RK45", rtol=RTOL, atol=ATOL)

        secs, n = common.time_cpu(call, run.warmup, run.repeats, run.budget)
        steps = len(out["sol"].t) - 1
        run.record("scipy solve_ivp (batch)", "dopri5", f"{rows}x2", secs, rows * steps,
                   "sample-steps/s", ours=ours_name("dopri5", rows, False), dtype="float64",
                   repeats=n, note="RK45, the batch as one system", extra={"nfev": out["sol"].nfev})
    if run.wanted("scipy solve_ivp (per row)", "dopri5"):
        out = {}

        def call_rows(_i):
            total = 0
            for r in range(loop_rows):
                sol = solve_ivp(lambda _t, y: (y ** 3) @ a, (0.0, T1), y0[r], method="RK45",
                                rtol=RTOL, atol=ATOL)
                total += len(sol.t) - 1
            out["steps"] = total

        secs, n = common.time_cpu(call_rows, min(run.warmup, 1), run.repeats, run.budget)
        run.record("scipy solve_ivp (per row)", "dopri5", f"{loop_rows}x2", secs, out["steps"],
                   "sample-steps/s", ours=ours_name("dopri5", rows, False), dtype="float64",
                   repeats=n, note=f"RK45 row by row ({loop_rows} rows; rate comparable)")


def run_numpy(run, np, rows):
    a = np.array(A)
    y0 = starts(np, rows)

    def f(_t, y):
        return (y ** 3) @ a

    def rms(x):
        return float(np.sqrt(np.mean(x * x)))

    def absmax(x, z=None):
        return np.abs(x) if z is None else np.maximum(np.abs(x), np.abs(z))

    run_loops(run, "numpy loop", f, y0, rows, rms, absmax, timer_for(run, None, False), False, "float64")


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    tde = common.try_import("torchdiffeq")
    if args.device == "cuda":
        sizes = [1000] if args.quick else [100000, 1 << 20]
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            if tde is None:
                print("torchdiffeq absent: its methods run as the equivalent plain PyTorch loop "
                      "('pytorch cuda loop' rows)", flush=True)
            for rows in sizes:
                if tde is not None:
                    run_torchdiffeq(run, torch, tde, "cuda", rows, "float32")
                run_torch(run, torch, "cuda", rows, "float32", "pytorch cuda")
    else:
        rows = 256 if args.quick else 4096
        np = common.numpy_cpu()
        if np is not None:
            run_scipy(run, np, rows, 16 if args.quick else 256)
            run_numpy(run, np, rows)
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            run_torch(run, torch, "cpu", rows, "float64", "pytorch cpu")
            if tde is not None:
                run_torchdiffeq(run, torch, tde, "cpu", rows, "float64")
    return run.finish(f"ODE peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
