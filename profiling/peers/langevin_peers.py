#!/usr/bin/env python3
"""Peers of genai::langevin (ULA) on the workloads of profiling/bench_langevin.cpp.

GPU (--device cuda), fp32:
  gmm8       2^20 chains, d = 2, 100 steps   (Gpu_Langevin/ula/chains:1048576/d:2/steps:100)
  mixture64  2^16 chains, d = 64, 100 steps  (Gpu_Langevin/ula/chains:65536/d:64/steps:100)
  peers: JAX jit(vmap(scan)) (the issue's form: one scan per chain, vmapped), JAX jit(scan) over
  the whole batch (often faster; reported too, the stronger of the two is the one to beat),
  PyTorch eager (one Python loop over steps, batched ops), and with --compile PyTorch with the
  step torch.compile'd.
CPU (--device cpu): gmm8, 4096 chains, 100 steps (Cpu_Langevin/ula_gmm8/chains:4096/d:2/steps:100)
  in NumPy and PyTorch CPU, float64 (the precision of our CPU reference, which runs in double)
  and float32.
Rate: chain-steps/s = chains * steps / seconds.

The workload, as genai_bench's: h = 0.02, beta = 1,
  x <- x + h grad log p(x) + sqrt(2h) xi,   xi ~ N(0, I) fresh every step (and every call),
one gradient per step, responsibilities by a softmax over the K components (a log-sum-exp, as
ours). gmm8 = 8 equal-weight N(mu_k, 0.5^2 I), mu_k = 4 (cos(k pi/4), sin(k pi/4));
mixture64 = 8 equal-weight N(mu_k, I) in d = 64, mu_k ~ N(0, 3^2 I). Initial states ~ N(0, 2^2 I),
created once outside the timed region; each call continues from the previous call's states
(as genai_bench, which updates x in place).
Differences (none changes the amount of work): random numbers come from each framework's own
generator (ours: Philox keyed by chain and step), so paths differ; mixture64's means are drawn
by NumPy/JAX/PyTorch, not by our Philox stream 64; our call also runs a finiteness check of the
initial states (one pass and a sync) that the peers do not.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

H = 0.02
BETA = 1.0


def gmm8_params():
    """(weights, means [K x d], variances [K x d]) as plain lists, as LangevinTarget::gmm8."""
    means = [[4 * math.cos(k * math.pi / 4), 4 * math.sin(k * math.pi / 4)] for k in range(8)]
    return [0.125] * 8, means, [[0.25, 0.25] for _ in range(8)]


def mixture64_params(seed=64):
    """8 equal-weight N(mu_k, I) in d = 64, mu_k ~ N(0, 9 I) (Python's own generator)."""
    import random
    rnd = random.Random(seed)
    means = [[rnd.gauss(0.0, 3.0) for _ in range(64)] for _ in range(8)]
    return [0.125] * 8, means, [[1.0] * 64 for _ in range(8)]


def target(d):
    return gmm8_params() if d == 2 else mixture64_params()


def derived(weights, means, variances):
    """log w_k - 1/2 sum_j log v_kj (the constant of each component), and 1 / v."""
    K = len(weights)
    logc = [math.log(weights[k] / sum(weights)) - 0.5 * sum(math.log(v) for v in variances[k])
            for k in range(K)]
    inv_v = [[1.0 / v for v in row] for row in variances]
    return logc, inv_v


def ours_name(chains, d, steps, gpu):
    if gpu:
        return f"Gpu_Langevin/ula/chains:{chains}/d:{d}/steps:{steps}/manual_time"
    return f"Cpu_Langevin/ula_gmm8/chains:{chains}/d:{d}/steps:{steps}/real_time"


# ---- PyTorch -----------------------------------------------------------------------------------

def torch_ula(torch, means, inv_v, logc, steps, noise_scale):
    """The eager loop: x [N x d] -> x after `steps` ULA steps (new tensor)."""

    def grad(x):
        r = means.unsqueeze(0) - x.unsqueeze(1)                  # [N, K, d]  mu_k - x
        ri = r * inv_v                                           # (mu_k - x) / v_k
        logits = logc - 0.5 * (r * ri).sum(-1)                   # [N, K]
        resp = torch.softmax(logits, dim=1)
        return (resp.unsqueeze(-1) * ri).sum(1)                  # [N, d]

    def step(x):
        return x + H * grad(x) + noise_scale * torch.randn_like(x)

    def run(x, step_fn=step):
        for _ in range(steps):
            x = step_fn(x)
        return x

    return run, step


def run_torch(run, torch, dev, d, chains, steps, dtype_name, peer, compile_step=False):
    dtype = getattr(torch, dtype_name)
    w, mu, var = target(d)
    logc, inv_v = derived(w, mu, var)
    shape = f"{chains}x{d}, {steps} steps"
    case = f"ula_{'gmm8' if d == 2 else 'mixture64'}"
    gpu = dev == "cuda"
    if not run.wanted(peer, case):
        return
    try:
        T = lambda v: torch.tensor(v, dtype=dtype, device=dev)  # noqa: E731
        means, inv, lc = T(mu), T(inv_v), T(logc)
        loop, step = torch_ula(torch, means, inv, lc, steps, math.sqrt(2 * H / BETA))
        if compile_step:
            step = torch.compile(step, dynamic=False)
        g = torch.Generator(device=dev)
        g.manual_seed(1)
        state = {"x": torch.randn(chains, d, generator=g, dtype=dtype, device=dev) * 2.0}

        def call(_i):
            state["x"] = loop(state["x"], step)

        if gpu:
            secs, n = common.time_torch_cuda(torch, call, run.warmup, run.repeats, run.budget)
        else:
            secs, n = common.time_cpu(call, run.warmup, run.repeats, run.budget)
        if not bool(torch.isfinite(state["x"]).all()):
            note = "non-finite states"
        else:
            note = None
        run.record(peer, case, shape, secs, chains * steps, "chain-steps/s",
                   ours=ours_name(chains, d, steps, gpu), dtype=dtype_name, repeats=n, note=note,
                   extra=None if gpu else {"threads": torch.get_num_threads()})
    except Exception as e:  # OOM, a compile failure: the other cases still run
        run.skip(peer, case, shape, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                 ours=ours_name(chains, d, steps, gpu))
    finally:
        if gpu:
            torch.cuda.empty_cache()


# ---- JAX ---------------------------------------------------------------------------------------

def jax_fns(jax, jnp, means, inv_v, logc, steps):
    noise_scale = math.sqrt(2 * H / BETA)

    def grad_one(x):                                   # x [d]
        r = means - x                                  # [K, d]
        ri = r * inv_v
        resp = jax.nn.softmax(logc - 0.5 * jnp.sum(r * ri, axis=-1))
        return jnp.sum(resp[:, None] * ri, axis=0)

    def chain(x0, key, call):                          # one chain, scanned over the steps
        def body(x, t):
            z = jax.random.normal(jax.random.fold_in(key, call * steps + t), x.shape, x.dtype)
            return x + H * grad_one(x) + noise_scale * z, None
        x, _ = jax.lax.scan(body, x0, jnp.arange(steps))
        return x

    vmap_scan = jax.jit(jax.vmap(chain, in_axes=(0, 0, None)))

    def batch(x0, key, call):                          # all chains at once, scanned
        grad_all = jax.vmap(grad_one)

        def body(x, t):
            z = jax.random.normal(jax.random.fold_in(key, call * steps + t), x.shape, x.dtype)
            return x + H * grad_all(x) + noise_scale * z, None
        x, _ = jax.lax.scan(body, x0, jnp.arange(steps))
        return x

    scan_batch = jax.jit(batch)
    return vmap_scan, scan_batch


def run_jax(run, jj, d, chains, steps):
    jax, jnp = jj
    w, mu, var = target(d)
    logc, inv_v = derived(w, mu, var)
    shape = f"{chains}x{d}, {steps} steps"
    case = f"ula_{'gmm8' if d == 2 else 'mixture64'}"
    means = jnp.asarray(mu, dtype=jnp.float32)
    inv = jnp.asarray(inv_v, dtype=jnp.float32)
    lc = jnp.asarray(logc, dtype=jnp.float32)
    vmap_scan, scan_batch = jax_fns(jax, jnp, means, inv, lc, steps)
    root = jax.random.PRNGKey(1)
    x0 = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (chains, d), jnp.float32)
    for peer, fn, key in (("jax jit(vmap(scan))", vmap_scan, jax.random.split(root, chains)),
                          ("jax jit(scan(batch))", scan_batch, root)):
        if not run.wanted(peer, case):
            continue
        try:
            state = {"x": x0}

            def call(i, fn=fn, key=key, state=state):
                state["x"] = fn(state["x"], key, i)
                return state["x"]

            secs, n = common.time_jax(jax, call, run.warmup, run.repeats, run.budget)
            note = None if bool(jnp.isfinite(state["x"]).all()) else "non-finite states"
            run.record(peer, case, shape, secs, chains * steps, "chain-steps/s",
                       ours=ours_name(chains, d, steps, True), repeats=n, note=note)
        except Exception as e:
            run.skip(peer, case, shape, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
                     ours=ours_name(chains, d, steps, True))


# ---- NumPy -------------------------------------------------------------------------------------

def run_numpy(run, np, d, chains, steps, dtype_name):
    peer, case = "numpy", f"ula_{'gmm8' if d == 2 else 'mixture64'}"
    if not run.wanted(peer, case):
        return
    dt = np.dtype(dtype_name)
    w, mu, var = target(d)
    logc, inv_v = derived(w, mu, var)
    means, inv, lc = (np.asarray(a, dtype=dt) for a in (mu, inv_v, logc))
    noise_scale = dt.type(math.sqrt(2 * H / BETA))
    h = dt.type(H)
    rng = np.random.default_rng(1)
    state = {"x": (rng.standard_normal((chains, d)) * 2.0).astype(dt)}

    def grad(x):
        r = means[None, :, :] - x[:, None, :]
        ri = r * inv
        logits = lc - dt.type(0.5) * np.einsum("nkd,nkd->nk", r, ri)
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        e /= e.sum(axis=1, keepdims=True)
        return np.einsum("nk,nkd->nd", e, ri)

    def call(_i):
        x = state["x"]
        for _ in range(steps):
            z = rng.standard_normal(x.shape, dtype=dt) if dt in (np.float32, np.float64) \
                else rng.standard_normal(x.shape).astype(dt)
            x = x + h * grad(x) + noise_scale * z
        state["x"] = x

    secs, n = common.time_cpu(call, run.warmup, run.repeats, run.budget)
    run.record(peer, case, f"{chains}x{d}, {steps} steps", secs, chains * steps, "chain-steps/s",
               ours=ours_name(chains, d, steps, False), dtype=dtype_name, repeats=n)


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--compile", action="store_true",
                   help="also PyTorch with the ULA step torch.compile'd (GPU)")
    args = p.parse_args()
    run = common.Run(args)
    if args.device == "cuda":
        steps = 10 if args.quick else 100
        shapes = [(2, 1 << 14 if args.quick else 1 << 20), (64, 1 << 10 if args.quick else 1 << 16)]
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            for d, chains in shapes:
                run_torch(run, torch, "cuda", d, chains, steps, "float32", "pytorch eager")
                if args.compile:
                    run_torch(run, torch, "cuda", d, chains, steps, "float32",
                              "pytorch compiled step", compile_step=True)
        jj = common.jax_gpu()
        if jj is not None:
            print(f"jax {jj[0].__version__}, {jj[0].devices('gpu')[0]}")
            for d, chains in shapes:
                run_jax(run, jj, d, chains, steps)
    else:
        steps = 10 if args.quick else 100
        chains = 256 if args.quick else 4096
        np = common.numpy_cpu()
        if np is not None:
            for dt in ("float64", "float32"):
                run_numpy(run, np, 2, chains, steps, dt)
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            for dt in ("float64", "float32"):
                run_torch(run, torch, "cpu", 2, chains, steps, dt, "pytorch cpu")
    return run.finish(f"ULA peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
