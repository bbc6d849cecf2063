#!/usr/bin/env python3
"""Peers of genai's diffusion module on the workloads of profiling/bench_diffusion.cpp.

GPU (--device cuda), PyTorch eager, fp32:
  sampler    DDPM (and DDIM, eta = 0) reverse loop on gmm8 with the exact mixture
             epsilon-prediction, 2^20 2D points x 1000 steps and x 100 steps
             (Gpu_MixtureSampler/{ddpm,ddim}_gmm8/n:1048576/steps:S/fused:1); points*steps/s.
  add_noise  forward noising x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, one timestep per row,
             n x d = 2^22 x 4 and 2^16 x 256, eps kept (eps:1) or not (eps:0)
             (Gpu_AddNoise/n:N/d:D/eps:E); GB/s over our byte count (8 + 4 eps) n d + 8 n.
  ddpm_step  one DDPM step t = 500 -> 490 from a given model output, 2^22 x 4 and 2^16 x 256
             (Gpu_DdpmStep/n:N/d:D); GB/s over 12 n d.
CPU (--device cpu), PyTorch CPU and NumPy, float64 (our CPU reference's precision) and float32:
  add_noise 2^18 x 4, eps:1 (Cpu_AddNoise/n:262144/d:4/eps:1); sampler DDPM, 4096 points x 100
  steps (Cpu_MixtureSampler/ddpm_gmm8/n:4096/steps:100).

The workload, as genai::sample_mixture with default options: the DDPM linear schedule, T = 1000,
beta from 1e-4 to 0.02 (tables in double), "leading" timestep spacing (1000 steps: 999..0; 100
steps: 990, 980, ..., 0), variance fixed_small, prediction epsilon, no clipping; x_T ~ N(0, I)
drawn inside the timed call; the model is the exact epsilon of gmm8 noised to alpha_bar_t:
gmm8 = 8 equal-weight N(mu_k, 0.04 I), mu_k = 4 (cos(2 pi k/8), sin(2 pi k/8)) (the diffusion
preset; the Langevin gmm8 has variance 0.25),
  eps(x) = -sqrt(1 - ab) grad log p_t(x),  p_t = sum_k w_k N(sqrt(ab) mu_k, (ab 0.04 + 1 - ab) I),
responsibilities by a softmax (log-sum-exp). The DDPM update is diffusers' (see diffusion.hpp):
x0 = (x - sqrt(1-ab) eps)/sqrt(ab); x = sqrt(ab_prev) b_t/(1-ab) x0 + sqrt(a_t)(1-ab_prev)/(1-ab) x
+ s z, no noise on the last step. Per-step constants are computed in Python double, as ours.
Forward noising: timesteps t_r = (7919 r) mod 1000, inputs rotated over enough copies to exceed
twice the L2 (as genai_bench), eps ~ N(0, I) drawn in the call.
Differences: random numbers from PyTorch's generator (ours: Philox), so paths differ; our
add_noise also checks the timestep range (one pass and a sync) and uploads the coefficient
tables per call, the peer keeps its tables on the device; the peer's DDPM step folds the
coefficients into x_prev = a x + b m + s z (the cheapest eager form).
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

T_TRAIN = 1000


def schedule():
    """alphas_cumprod of the linear schedule (double), as genai::NoiseSchedule's defaults."""
    ab, prod = [], 1.0
    for i in range(T_TRAIN):
        beta = 1e-4 + (0.02 - 1e-4) * i / (T_TRAIN - 1)
        prod *= 1.0 - beta
        ab.append(prod)
    return ab


def leading_timesteps(n_steps):
    step = T_TRAIN // n_steps
    return [(n_steps - 1 - i) * step for i in range(n_steps)]


def gmm8():
    means = [[4 * math.cos(2 * math.pi * k / 8), 4 * math.sin(2 * math.pi * k / 8)]
             for k in range(8)]
    return [0.125] * 8, means, 0.04


def step_tables(ab, ts, kind):
    """Per step i: (sqrt(ab), 1/v, log w + const, c_x0, c_x, c_eps, sigma) in double.
    DDPM: x_prev = c_x0 x0 + c_x x + sigma z. DDIM (eta 0): x_prev = c_x0 x0 + c_eps eps."""
    w, _, var = gmm8()
    rows = []
    for i, t in enumerate(ts):
        prev = ts[i + 1] if i + 1 < len(ts) else -1
        a = ab[t]
        a_prev = ab[prev] if prev >= 0 else 1.0
        v = a * var + 1 - a
        logc = math.log(w[0]) - 0.5 * 2 * math.log(v)  # equal weights, isotropic: a constant
        if kind == "ddpm":
            a_t = a / a_prev
            b_t = 1 - a_t
            c_x0 = math.sqrt(a_prev) * b_t / (1 - a)
            c_x = math.sqrt(a_t) * (1 - a_prev) / (1 - a)
            sigma = math.sqrt((1 - a_prev) / (1 - a) * b_t) if prev >= 0 else 0.0
            c_eps = 0.0
        else:
            c_x0, c_x, sigma = math.sqrt(a_prev), 0.0, 0.0
            c_eps = math.sqrt(1 - a_prev)
        rows.append((math.sqrt(a), 1.0 / v, logc, c_x0, c_x, c_eps, sigma, math.sqrt(1 - a)))
    return rows


def ours_sampler(kind, n, steps, gpu):
    if gpu:
        return f"Gpu_MixtureSampler/{kind}_gmm8/n:{n}/steps:{steps}/fused:1/manual_time"
    return f"Cpu_MixtureSampler/{kind}_gmm8/n:{n}/steps:{steps}/real_time"


def ours_noise(n, d, eps, gpu):
    return (f"{'Gpu' if gpu else 'Cpu'}_AddNoise/n:{n}/d:{d}/eps:{int(eps)}/"
            f"{'manual_time' if gpu else 'real_time'}")


def noise_bytes(n, d, eps):
    return (8.0 + (4.0 if eps else 0.0)) * n * d + 8.0 * n


def err(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


# ---- PyTorch -----------------------------------------------------------------------------------

def torch_sampler(run, torch, dev, kind, n, steps, dtype_name, peer):
    case = f"{kind}_gmm8"
    shape = f"{n}x2, {steps} steps"
    gpu = dev == "cuda"
    ours = ours_sampler(kind, n, steps, gpu)
    if not run.wanted(peer, case):
        return
    dtype = getattr(torch, dtype_name)
    try:
        _, mu, _ = gmm8()
        means = torch.tensor(mu, dtype=dtype, device=dev)           # [K, 2]
        rows = step_tables(schedule(), leading_timesteps(steps), kind)
        g = torch.Generator(device=dev)
        g.manual_seed(1)
        out = {}

        def eps_of(x, sa, inv_v, logc, s1m):
            r = sa * means - x.unsqueeze(1)                         # [n, K, 2]  sqrt(ab) mu - x
            logits = logc - 0.5 * inv_v * (r * r).sum(-1)           # [n, K]
            resp = torch.softmax(logits, dim=1)
            score = inv_v * (resp.unsqueeze(-1) * r).sum(1)         # grad log p_t
            return -s1m * score

        def call(_i):
            x = torch.randn(n, 2, generator=g, dtype=dtype, device=dev)   # x_T
            for (sa, inv_v, logc, c_x0, c_x, c_eps, sigma, s1m) in rows:
                e = eps_of(x, sa, inv_v, logc, s1m)
                x0 = (x - s1m * e) / sa
                if kind == "ddpm":
                    x = c_x0 * x0 + c_x * x
                    if sigma > 0:
                        x = x + sigma * torch.randn(n, 2, generator=g, dtype=dtype, device=dev)
                else:
                    x = c_x0 * x0 + c_eps * e
            out["x"] = x

        if gpu:
            secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats, run.budget)
        else:
            secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
        x = out["x"]
        # A sanity figure: the mean radius of the samples (gmm8's modes lie at radius 4).
        radius = float(x.double().norm(dim=1).mean())
        run.record(peer, case, shape, secs, n * steps, "point-steps/s", ours=ours,
                   dtype=dtype_name, repeats=reps, extra={"mean_radius": round(radius, 4)})
    except Exception as e:
        run.skip(peer, case, shape, err(e), ours=ours)
    finally:
        if gpu:
            torch.cuda.empty_cache()


def torch_add_noise(run, torch, dev, n, d, eps, dtype_name, peer):
    case = f"add_noise eps:{int(eps)}"
    shape = f"{n}x{d}"
    gpu = dev == "cuda"
    ours = ours_noise(n, d, eps, gpu)
    if not run.wanted(peer, case):
        return
    dtype = getattr(torch, dtype_name)
    try:
        ab = schedule()
        sab = torch.tensor([math.sqrt(a) for a in ab], dtype=dtype, device=dev)
        s1m = torch.tensor([math.sqrt(1 - a) for a in ab], dtype=dtype, device=dev)
        ts = (torch.arange(n, dtype=torch.int64, device=dev) * 7919) % T_TRAIN
        nbytes = n * d * torch.finfo(dtype).bits // 8
        sets = common.l2_rotation_sets(nbytes, common.torch_l2_bytes(torch)) if gpu else 1
        g = torch.Generator(device=dev)
        g.manual_seed(1)
        x0 = [torch.randn(n, d, generator=g, dtype=dtype, device=dev) for _ in range(sets)]
        xt = [torch.empty(n, d, dtype=dtype, device=dev) for _ in range(sets)]
        ep = [torch.empty(n, d, dtype=dtype, device=dev) for _ in range(sets)]
        tss = [ts.clone() for _ in range(sets)]

        def call(i):
            k = i % sets
            torch.randn(n, d, generator=g, dtype=dtype, device=dev, out=ep[k])
            t = tss[k]
            torch.mul(x0[k], sab[t].unsqueeze(1), out=xt[k])
            xt[k].addcmul_(s1m[t].unsqueeze(1), ep[k])

        if gpu:
            secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats, run.budget)
        else:
            secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
        run.record(peer, case, shape, secs, noise_bytes(n, d, eps), "B/s", ours=ours,
                   dtype=dtype_name, repeats=reps,
                   note=None if eps else "eps drawn into a buffer either way (eager has no "
                                         "fused draw-and-use)")
    except Exception as e:
        run.skip(peer, case, shape, err(e), ours=ours)
    finally:
        if gpu:
            torch.cuda.empty_cache()


def torch_ddpm_step(run, torch, n, d, peer):
    case, shape = "ddpm_step t:500->490", f"{n}x{d}"
    ours = f"Gpu_DdpmStep/n:{n}/d:{d}/manual_time"
    if not run.wanted(peer, case):
        return
    try:
        ab = schedule()
        a, a_prev = ab[500], ab[490]
        a_t = a / a_prev
        b_t = 1 - a_t
        c_x0 = math.sqrt(a_prev) * b_t / (1 - a)
        c_x = math.sqrt(a_t) * (1 - a_prev) / (1 - a)
        sigma = math.sqrt((1 - a_prev) / (1 - a) * b_t)
        # x0 = (x - sqrt(1-a) m)/sqrt(a): x_prev = (c_x0/sqrt(a) + c_x) x - c_x0 sqrt(1-a)/sqrt(a) m
        ca = c_x0 / math.sqrt(a) + c_x
        cb = -c_x0 * math.sqrt(1 - a) / math.sqrt(a)
        sets = common.l2_rotation_sets(n * d * 4, common.torch_l2_bytes(torch))
        g = torch.Generator(device="cuda")
        g.manual_seed(1)
        xs = [torch.randn(n, d, generator=g, device="cuda") for _ in range(sets)]
        ms = [torch.randn(n, d, generator=g, device="cuda") for _ in range(sets)]
        outs = [torch.empty(n, d, device="cuda") for _ in range(sets)]

        def call(i):
            k = i % sets
            torch.mul(xs[k], ca, out=outs[k])
            outs[k].add_(ms[k], alpha=cb)
            outs[k].add_(torch.randn(n, d, generator=g, device="cuda"), alpha=sigma)

        secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats, run.budget)
        run.record(peer, case, shape, secs, 12.0 * n * d, "B/s", ours=ours, repeats=reps)
    except Exception as e:
        run.skip(peer, case, shape, err(e), ours=ours)
    finally:
        torch.cuda.empty_cache()


# ---- NumPy -------------------------------------------------------------------------------------

def numpy_sampler(run, np, n, steps, dtype_name):
    peer, case, kind = "numpy", "ddpm_gmm8", "ddpm"
    if not run.wanted(peer, case):
        return
    dt = np.dtype(dtype_name)
    _, mu, _ = gmm8()
    means = np.asarray(mu, dtype=dt)
    rows = step_tables(schedule(), leading_timesteps(steps), kind)
    rng = np.random.default_rng(1)
    out = {}

    def call(_i):
        x = rng.standard_normal((n, 2), dtype=dt)
        for (sa, inv_v, logc, c_x0, c_x, _c_eps, sigma, s1m) in rows:
            r = dt.type(sa) * means[None] - x[:, None, :]
            logits = dt.type(logc) - dt.type(0.5 * inv_v) * (r * r).sum(-1)
            logits -= logits.max(axis=1, keepdims=True)
            e = np.exp(logits)
            e /= e.sum(axis=1, keepdims=True)
            score = dt.type(inv_v) * np.einsum("nk,nkd->nd", e, r)
            eps = dt.type(-s1m) * score
            x0 = (x - dt.type(s1m) * eps) / dt.type(sa)
            x = dt.type(c_x0) * x0 + dt.type(c_x) * x
            if sigma > 0:
                x = x + dt.type(sigma) * rng.standard_normal((n, 2), dtype=dt)
        out["x"] = x

    secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
    radius = float(np.linalg.norm(out["x"].astype(np.float64), axis=1).mean())
    run.record(peer, case, f"{n}x2, {steps} steps", secs, n * steps, "point-steps/s",
               ours=ours_sampler(kind, n, steps, False), dtype=dtype_name, repeats=reps,
               extra={"mean_radius": round(radius, 4)})


def numpy_add_noise(run, np, n, d, dtype_name):
    peer, case = "numpy", "add_noise eps:1"
    if not run.wanted(peer, case):
        return
    dt = np.dtype(dtype_name)
    ab = np.asarray(schedule())
    sab, s1m = np.sqrt(ab).astype(dt), np.sqrt(1 - ab).astype(dt)
    ts = (np.arange(n, dtype=np.int64) * 7919) % T_TRAIN
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((n, d), dtype=dt)
    xt = np.empty((n, d), dtype=dt)
    ep = np.empty((n, d), dtype=dt)

    def call(_i):
        rng.standard_normal((n, d), dtype=dt, out=ep)
        np.multiply(x0, sab[ts][:, None], out=xt)
        np.add(xt, s1m[ts][:, None] * ep, out=xt)

    secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
    run.record(peer, case, f"{n}x{d}", secs, noise_bytes(n, d, True), "B/s",
               ours=ours_noise(n, d, True, False), dtype=dtype_name, repeats=reps)


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    if args.device == "cuda":
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            peer = "pytorch eager"
            n = 1 << 14 if args.quick else 1 << 20
            for kind in ("ddpm", "ddim"):
                for steps in ((100,) if args.quick else (1000, 100)):
                    torch_sampler(run, torch, "cuda", kind, n, steps, "float32", peer)
            noise_shapes = ([(1 << 18, 4), (1 << 12, 256)] if args.quick
                            else [(1 << 22, 4), (1 << 16, 256)])
            for eps in (False, True):
                for n, d in noise_shapes:
                    torch_add_noise(run, torch, "cuda", n, d, eps, "float32", peer)
            for n, d in noise_shapes:
                torch_ddpm_step(run, torch, n, d, peer)
        print("jax: no DDPM peer in this script (the issue names PyTorch eager as the peer)")
    else:
        n_s, steps = (512, 20) if args.quick else (4096, 100)
        n_n = 1 << 14 if args.quick else 1 << 18
        np = common.numpy_cpu()
        if np is not None:
            for dt in ("float64", "float32"):
                numpy_add_noise(run, np, n_n, 4, dt)
                numpy_sampler(run, np, n_s, steps, dt)
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            for dt in ("float64", "float32"):
                torch_add_noise(run, torch, "cpu", n_n, 4, True, dt, "pytorch cpu")
                torch_sampler(run, torch, "cpu", "ddpm", n_s, steps, dt, "pytorch cpu")
    return run.finish(f"diffusion peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
