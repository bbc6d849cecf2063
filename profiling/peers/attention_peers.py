#!/usr/bin/env python3
"""Peers of genai's attention module on the workloads of profiling/bench_attention.cpp.

GPU (--device cuda), PyTorch scaled_dot_product_attention, q, k, v [B, H, L, d], Lq = Lk = L:
  fp16 / bf16  FlashAttention's setting, as Gpu_AttentionFp16 / Gpu_AttentionBf16: 16k tokens
               per batch (B = 16384 / L), hidden 2048 (H = 2048 / d), d in {64, 128},
               L in {512, ..., 16384}, causal and not; every SDPA backend PyTorch offers
               (torch.nn.attention.sdpa_kernel: FLASH_ATTENTION, CUDNN_ATTENTION,
               EFFICIENT_ATTENTION, MATH; a backend that refuses a shape is recorded as skipped
               with its reason), and the default dispatch, whose choice is read from the CUDA
               kernel names in torch.profiler.
  fp32         as Gpu_Attention: B = 2, H = 8, d in {64, 128}, L in {512, 2048}, causal and
               not, through the MATH and EFFICIENT_ATTENTION backends (the ones taking fp32).
Throughput: FlashAttention's count, 4 B H L^2 d flop per call, halved for causal.
CPU (--device cpu), as Cpu_Attention (B = 2, H = 4, L = 256, d = 64, not causal): the explicit
softmax(Q K^T / sqrt(d)) V in NumPy and PyTorch CPU, and PyTorch CPU's SDPA, float64 (our CPU
reference's precision) and float32.
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

BACKENDS = ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH")


def flop(B, H, L, d, causal):
    return 4.0 * B * H * L * L * d * (0.5 if causal else 1.0)


def ours_gpu(dtype, B, H, L, d, causal):
    if dtype == "float32":
        return f"Gpu_Attention/H:{H}/L:{L}/d:{d}/causal:{int(causal)}/manual_time"
    name = "Gpu_AttentionFp16" if dtype == "float16" else "Gpu_AttentionBf16"
    return f"{name}/B:{B}/H:{H}/L:{L}/d:{d}/causal:{int(causal)}/manual_time"


def err(e):
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0][:200] if s else ''}"


def backend_of_kernels(names):
    """The SDPA backend whose kernels ran, from CUDA kernel names."""
    low = " ".join(names).lower()
    if "cudnn" in low:
        return "CUDNN_ATTENTION"
    if "flash" in low:
        return "FLASH_ATTENTION"
    if "fmha" in low or "efficient" in low or "mem_eff" in low:
        return "EFFICIENT_ATTENTION"
    return "MATH"


def default_backend(torch, call):
    """Runs call() once under torch.profiler; the backend its CUDA kernels belong to."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    names = [e.key for e in prof.key_averages()]
    return backend_of_kernels(names), [n for n in names if "memcpy" not in n.lower()][:4]


def torch_gpu_case(run, torch, dtype_name, B, H, L, d, causal):
    F = torch.nn.functional
    from torch.nn.attention import SDPBackend, sdpa_kernel
    dtype = getattr(torch, dtype_name)
    shape = f"B{B} H{H} L{L} d{d}"
    case = f"sdpa{' causal' if causal else ''}"
    ours = ours_gpu(dtype_name, B, H, L, d, causal)
    work = flop(B, H, L, d, causal)
    names = BACKENDS if dtype_name != "float32" else ("EFFICIENT_ATTENTION", "MATH")
    peers = [f"torch sdpa {n.lower()}" for n in names]
    if dtype_name != "float32":
        peers.append("torch sdpa default")
    if not any(run.wanted(p, case) for p in peers):
        return
    try:
        nbytes = 3 * B * H * L * d * torch.finfo(dtype).bits // 8
        sets = common.l2_rotation_sets(nbytes, common.torch_l2_bytes(torch))
        g = torch.Generator(device="cuda")
        g.manual_seed(1)
        qkv = [[torch.randn(B, H, L, d, generator=g, device="cuda", dtype=dtype) for _ in range(3)]
               for _ in range(sets)]
    except Exception as e:
        for p in peers:
            run.skip(p, case, shape, err(e), ours=ours)
        torch.cuda.empty_cache()
        return

    def call(i):
        q, k, v = qkv[i % sets]
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    timings = {}
    for name in names:
        peer = f"torch sdpa {name.lower()}"
        if not run.wanted(peer, case):
            continue
        try:
            with sdpa_kernel(getattr(SDPBackend, name)):
                secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats,
                                                    run.budget)
            timings[name] = secs
            run.record(peer, case, shape, secs, work, "flop/s", ours=ours, dtype=dtype_name,
                       repeats=reps)
        except Exception as e:  # "No available kernel", out of memory, ...
            run.skip(peer, case, shape, err(e), ours=ours)
        finally:
            torch.cuda.empty_cache()
    peer = "torch sdpa default"
    if dtype_name != "float32" and run.wanted(peer, case):
        try:
            secs, reps = common.time_torch_cuda(torch, call, run.warmup, run.repeats, run.budget)
            picked, kernels = default_backend(torch, lambda: call(0))
            fastest = min(timings, key=timings.get) if timings else None
            run.record(peer, case, shape, secs, work, "flop/s", ours=ours, dtype=dtype_name,
                       repeats=reps, note=f"picks {picked}",
                       extra={"picked": picked, "kernels": kernels, "fastest_backend": fastest})
        except Exception as e:
            run.skip(peer, case, shape, err(e), ours=ours)
        finally:
            torch.cuda.empty_cache()
    del qkv
    torch.cuda.empty_cache()


# ---- CPU ---------------------------------------------------------------------------------------

def ours_cpu(H, L, d):
    return f"Cpu_Attention/H:{H}/L:{L}/d:{d}/causal:0/real_time"


def numpy_cpu_case(run, np, B, H, L, d, dtype_name):
    peer, case = "numpy", "softmax(QK^T)V"
    if not run.wanted(peer, case):
        return
    dt = np.dtype(dtype_name)
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((B, H, L, d)).astype(dt) for _ in range(3))
    scale = dt.type(1.0 / math.sqrt(d))

    def call(_i):
        s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
        s -= s.max(axis=-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        return np.matmul(s, v)

    secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
    run.record(peer, case, f"B{B} H{H} L{L} d{d}", secs, flop(B, H, L, d, False), "flop/s",
               ours=ours_cpu(H, L, d), dtype=dtype_name, repeats=reps)


def torch_cpu_cases(run, torch, B, H, L, d, dtype_name):
    dtype = getattr(torch, dtype_name)
    g = torch.Generator()
    g.manual_seed(1)
    q, k, v = (torch.randn(B, H, L, d, generator=g, dtype=dtype) for _ in range(3))
    scale = 1.0 / math.sqrt(d)
    calls = {
        "softmax(QK^T)V": lambda _i: torch.softmax((q @ k.transpose(-1, -2)) * scale, dim=-1) @ v,
        "sdpa": lambda _i: torch.nn.functional.scaled_dot_product_attention(q, k, v),
    }
    for case, call in calls.items():
        peer = "pytorch cpu"
        if not run.wanted(peer, case):
            continue
        try:
            with torch.no_grad():
                secs, reps = common.time_cpu(call, run.warmup, run.repeats, run.budget)
            run.record(peer, case, f"B{B} H{H} L{L} d{d}", secs, flop(B, H, L, d, False),
                       "flop/s", ours=ours_cpu(H, L, d), dtype=dtype_name, repeats=reps,
                       extra={"torch_threads": torch.get_num_threads()})
        except Exception as e:
            run.skip(peer, case, f"B{B} H{H} L{L} d{d}", err(e), ours=ours_cpu(H, L, d))


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    if args.device == "cuda":
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            Ls = (512, 1024) if args.quick else (512, 1024, 2048, 4096, 8192, 16384)
            ds = (64,) if args.quick else (64, 128)
            for dtype_name in ("float16", "bfloat16"):
                for d in ds:
                    for L in Ls:
                        for causal in (False, True):
                            torch_gpu_case(run, torch, dtype_name, 16384 // L, 2048 // d, L, d,
                                           causal)
            for d in ds:
                for L in ((512,) if args.quick else (512, 2048)):
                    for causal in (False, True):
                        torch_gpu_case(run, torch, "float32", 2, 8, L, d, causal)
    else:
        B, H, L, d = (2, 4, 64, 64) if args.quick else (2, 4, 256, 64)
        np = common.numpy_cpu()
        if np is not None:
            for dt in ("float64", "float32"):
                numpy_cpu_case(run, np, B, H, L, d, dt)
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            for dt in ("float64", "float32"):
                torch_cpu_cases(run, torch, B, H, L, d, dt)
    return run.finish(f"attention peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
