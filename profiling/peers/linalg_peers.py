#!/usr/bin/env python3
"""Peers of genai::svd / svd_batched on the shapes of profiling/bench_linalg.cpp (issue 6).

GPU (--device cuda), fp32, economy SVD with U, S and Vt (torch.linalg.svd, full_matrices=False):
  tall     100000 x 256
  square   4096 x 4096
  batched  10000 x 16 x 16
  topk     k = 32 of 50000 x 2000
  peers: torch.linalg.svd with the default driver and with driver= gesvd, gesvdj, gesvda
  (cuSOLVER, each through torch); for top-k torch.svd_lowrank(X, q = 32 + 10, niter = 2) (the
  oversampling and power iterations of our randomized method: q is PyTorch's sketch width,
  k + oversampling) and the full economy SVD (default driver) truncated to 32; CuPy's
  cupy.linalg.svd (cuSOLVER gesvd) where CuPy is installed.
CPU (--device cpu): NumPy (LAPACK gesdd, as our CPU qr method, which calls LAPACKE_dgesdd) in
  float64 (our CPU reference computes in double) and float32, SciPy's gesvd driver when SciPy is
  installed, and torch.linalg.svd on the CPU, at genai_bench's CPU shapes 20000 x 256,
  1024 x 1024, 4000 x 256, 1000 x 16 x 16.
Time: seconds per call (median). Throughput: the effective rate (6 M N^2 + 20 N^3) / seconds
per matrix (M >= N), the figure genai_bench reports as flop_rate, so the two read on one scale.
Accuracy, measured after the timing and reported in "extra": the relative reconstruction
residual ||X - U S Vt||_F / ||X||_F (max over a batch) and, for top-k, the largest relative
error of the k singular values against the default driver's.
Inputs: standard normal fp32 (ours: Philox normals, seed 6), created once outside the timed
region; each call returns fresh outputs (ours writes into preallocated buffers). Our GPU calls
include a devInfo read-back; torch.linalg.svd without check_errors does not sync, but the CUDA
event timing includes everything it queues.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# genai::SvdMethod values, as genai_bench's method:N argument.
AUTO, QR, JACOBI, BATCHED_JACOBI, RANDOMIZED, GRAM = range(6)
OVERSAMPLING, POWER_ITERATIONS = 10, 2


def eff_flop(batch, m, n):
    M, N = max(m, n), min(m, n)
    return batch * (6.0 * M * N * N + 20.0 * N ** 3)


def ours_name(batch, m, n, k, method, gpu):
    return (f"{'Gpu' if gpu else 'Cpu'}_Svd/batch:{batch}/m:{m}/n:{n}/k:{k}/method:{method}/"
            f"{'manual_time' if gpu else 'real_time'}")


def shape_str(batch, m, n, k):
    s = f"{batch}x{m}x{n}" if batch > 1 else f"{m}x{n}"
    return s + (f", k={k}" if k else "")


def err(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


# ---- PyTorch GPU -------------------------------------------------------------------------------

def torch_residual(torch, X, U, S, Vh):
    """max over the batch of ||X - U S Vh||_F / ||X||_F (in float64)."""
    Xd, Ud, Sd, Vd = X.double(), U.double(), S.double(), Vh.double()
    R = Xd - (Ud * Sd.unsqueeze(-2)) @ Vd
    r = torch.linalg.matrix_norm(R) / torch.linalg.matrix_norm(Xd)
    return float(r.max())


def gpu_cases(quick):
    if quick:
        return [("tall", 1, 10000, 64, 0), ("square", 1, 512, 512, 0),
                ("batched", 1000, 16, 16, 0), ("topk", 1, 5000, 400, 8)]
    return [("tall", 1, 100000, 256, 0), ("square", 1, 4096, 4096, 0),
            ("batched", 10000, 16, 16, 0), ("topk", 1, 50000, 2000, 32)]


def torch_gpu(run, torch, cases):
    torch.backends.cuda.matmul.allow_tf32 = False
    for name, batch, m, n, k in cases:
        shape = shape_str(batch, m, n, k)
        g = torch.Generator(device="cuda")
        g.manual_seed(6)
        try:
            X = torch.randn(*((batch,) if batch > 1 else ()), m, n, generator=g, device="cuda")
        except Exception as e:
            run.skip("torch", name, shape, err(e))
            continue
        work = eff_flop(batch, m, n)
        s_ref = None
        for driver in (None, "gesvd", "gesvdj", "gesvda"):
            peer = f"torch.linalg.svd {driver or 'default'}"
            if k:
                if driver is not None:
                    continue  # top-k: the default driver only (the baseline of the issue)
                peer += " (truncated)"
            if batch > 1:
                ours = ours_name(batch, m, n, k, BATCHED_JACOBI if driver == "gesvdj" else AUTO,
                                 True)
            else:
                ours = ours_name(batch, m, n, k,
                                 {"gesvd": QR, "gesvdj": JACOBI}.get(driver, AUTO), True)
            if not run.wanted(peer, name):
                continue
            try:
                out = {}

                def call(_i, driver=driver, out=out):
                    out["r"] = torch.linalg.svd(X, full_matrices=False, driver=driver)

                secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats,
                                                    run.budget)
                U, S, Vh = out["r"]
                extra = {"residual": torch_residual(torch, X, U, S, Vh)}
                if k:
                    s_ref = S.double().clone()  # all min(m, n) values: exact top-k and tail
                out.clear()
                del U, S, Vh
                run.record(peer, name, shape, secs, work, "flop/s", ours=ours, repeats=reps,
                           extra=extra)
            except Exception as e:
                run.skip(peer, name, shape, err(e), ours=ours)
            finally:
                torch.cuda.empty_cache()
        if k:
            peer = f"torch.svd_lowrank q={k + OVERSAMPLING} niter={POWER_ITERATIONS}"
            ours = ours_name(batch, m, n, k, AUTO, True)
            if run.wanted(peer, name):
                try:
                    out = {}

                    def call(_i, out=out):
                        out["r"] = torch.svd_lowrank(X, q=k + OVERSAMPLING,
                                                     niter=POWER_ITERATIONS)

                    secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats,
                                                        run.budget)
                    U, S, V = out["r"]
                    U, S, Vh = U[:, :k], S[:k], V[:, :k].mT
                    extra = {"residual_rank_k": torch_residual(torch, X, U, S, Vh)}
                    if s_ref is not None:
                        top = s_ref[:k]
                        extra["max_rel_err_S"] = float(((S.double() - top).abs() / top).max())
                        # Eckart-Young: the best rank-k residual, for residual_rank_k to read against
                        extra["optimal_residual_rank_k"] = float(
                            (s_ref[k:].square().sum() / s_ref.square().sum()).sqrt())
                    run.record(peer, name, shape, secs, work, "flop/s", ours=ours, repeats=reps,
                               extra=extra)
                except Exception as e:
                    run.skip(peer, name, shape, err(e), ours=ours)
                finally:
                    torch.cuda.empty_cache()
        del X
        torch.cuda.empty_cache()


def cupy_gpu(run, cp, cases):
    peer = "cupy.linalg.svd"
    for name, batch, m, n, k in cases:
        shape = shape_str(batch, m, n, k)
        ours = ours_name(batch, m, n, k, AUTO, True)
        if not run.wanted(peer, name):
            continue
        try:
            rs = cp.random.RandomState(6)
            X = rs.standard_normal(((batch,) if batch > 1 else ()) + (m, n), dtype=cp.float32)
            out = {}

            def call(_i, X=X, out=out):
                out["r"] = cp.linalg.svd(X, full_matrices=False)

            secs, reps = common.time_cupy(cp, call, run.warmup, run.repeats, run.budget)
            U, S, Vh = out["r"]
            R = X.astype(cp.float64) - cp.matmul(U.astype(cp.float64) * S[..., None, :],
                                                 Vh.astype(cp.float64))
            res = float((cp.sqrt((R * R).sum(axis=(-2, -1))) /
                         cp.sqrt((X.astype(cp.float64) ** 2).sum(axis=(-2, -1)))).max())
            run.record(peer, name + (" (truncated)" if k else ""), shape, secs,
                       eff_flop(batch, m, n), "flop/s", ours=ours, repeats=reps,
                       extra={"residual": res})
            del U, S, Vh, R, X
            out.clear()
        except Exception as e:
            run.skip(peer, name, shape, err(e), ours=ours)
        finally:
            try:
                cp.get_default_memory_pool().free_all_blocks()
            except Exception:
                pass


# ---- CPU ---------------------------------------------------------------------------------------

def cpu_cases(quick):
    if quick:
        return [("tall", 1, 2000, 64), ("square", 1, 128, 128), ("tall", 1, 400, 64),
                ("batched", 100, 16, 16)]
    return [("tall", 1, 20000, 256), ("square", 1, 1024, 1024), ("tall", 1, 4000, 256),
            ("batched", 1000, 16, 16)]


def numpy_cpu(run, np, cases):
    scipy_linalg = None
    try:
        import scipy.linalg as scipy_linalg
    except Exception as e:
        print(f"scipy not available ({type(e).__name__}): no gesvd row on the CPU")
    rng = np.random.default_rng(6)
    for name, batch, m, n in cases:
        shape = shape_str(batch, m, n, 0)
        X32 = rng.standard_normal(((batch,) if batch > 1 else ()) + (m, n), dtype=np.float32)
        for dt in ("float64", "float32"):
            X = X32.astype(dt)
            peers = [("numpy.linalg.svd (gesdd)",
                      lambda X=X: np.linalg.svd(X, full_matrices=False))]
            if scipy_linalg is not None and batch == 1:
                peers.append(("scipy.linalg.svd gesvd",
                              lambda X=X: scipy_linalg.svd(X, full_matrices=False,
                                                           lapack_driver="gesvd",
                                                           check_finite=False)))
            for peer, f in peers:
                if not run.wanted(peer, name):
                    continue
                out = {}

                def call(_i, f=f, out=out):
                    out["r"] = f()

                secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
                U, S, Vh = out["r"]
                R = X.astype(np.float64) - (U * S[..., None, :]) @ Vh
                res = float((np.linalg.norm(R, axis=(-2, -1)) /
                             np.linalg.norm(X.astype(np.float64), axis=(-2, -1))).max())
                run.record(peer, name, shape, secs, eff_flop(batch, m, n), "flop/s",
                           ours=ours_name(batch, m, n, 0, QR, False), dtype=dt, repeats=reps,
                           extra={"residual": res})


def torch_cpu(run, torch, cases):
    g = torch.Generator()
    g.manual_seed(6)
    peer = "torch.linalg.svd cpu"
    for name, batch, m, n in cases:
        shape = shape_str(batch, m, n, 0)
        X32 = torch.randn(*((batch,) if batch > 1 else ()), m, n, generator=g)
        for dt in ("float64", "float32"):
            if not run.wanted(peer, name):
                continue
            X = X32.to(getattr(torch, dt))
            out = {}

            def call(_i, X=X, out=out):
                out["r"] = torch.linalg.svd(X, full_matrices=False)

            secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
            U, S, Vh = out["r"]
            run.record(peer, name, shape, secs, eff_flop(batch, m, n), "flop/s",
                       ours=ours_name(batch, m, n, 0, QR, False), dtype=dt, repeats=reps,
                       extra={"residual": torch_residual(torch, X, U, S, Vh),
                              "threads": torch.get_num_threads()})


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    if args.repeats is None and not args.quick:
        args.repeats = 5  # SVDs of these sizes take tens of milliseconds to seconds
    run = common.Run(args)
    if args.device == "cuda":
        cases = gpu_cases(args.quick)
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            torch_gpu(run, torch, cases)
        cp = common.cupy_gpu()
        if cp is not None:
            print(f"cupy {cp.__version__}")
            cupy_gpu(run, cp, cases)
    else:
        cases = cpu_cases(args.quick)
        np = common.numpy_cpu()
        if np is not None:
            print(f"numpy {np.__version__}")
            numpy_cpu(run, np, cases)
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            torch_cpu(run, torch, cases)
    return run.finish(f"SVD peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
