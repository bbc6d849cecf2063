#!/usr/bin/env python3
"""Peers of genai's losses module on the workloads of profiling/bench_losses.cpp.

Cross-entropy from logits, forward and backward (mean reduction, the gradient with respect to
the logits), N x C, targets t_i = (7919 i) mod C:
  GPU (--device cuda): F.cross_entropy(logits, targets) then loss.backward() in PyTorch eager
      (two kernels forward, two backward; the gradient materialised in its own buffer, as ours),
      fp32 at 8192 x 32768, 65536 x 1024, 2048 x 131072 (Gpu_CrossEntropy/N:N/C:C/check:0) and
      bf16 at 8192 x 32768 (Gpu_CrossEntropyBf16/...); Liger-Kernel's LigerCrossEntropyLoss
      (the fused Triton kernel ours follows) when `liger_kernel` imports -- the GPU machine does
      not have it, so that row is recorded as skipped there. Throughput in B/s over our byte
      count, 2 N C s + 8 N (s = 4 or 2 bytes per logit).
  CPU (--device cpu): the same in PyTorch CPU at 1024 x 4096 (Cpu_CrossEntropy/N:1024/C:4096),
      float64 (our CPU reference's precision) and float32.
Inputs are rotated over enough copies to exceed twice the L2 (as genai_bench); the logits'
.grad is reset to None before each call, so every backward writes a fresh gradient.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def ours(N, C, dtype_name, gpu):
    if not gpu:
        return f"Cpu_CrossEntropy/N:{N}/C:{C}/real_time"
    name = "Gpu_CrossEntropyBf16" if dtype_name == "bfloat16" else "Gpu_CrossEntropy"
    return f"{name}/N:{N}/C:{C}/check:0/manual_time"


def ce_bytes(N, C, itemsize):
    return 2.0 * N * C * itemsize + 8.0 * N


def liger_loss():
    """Liger-Kernel's fused cross-entropy module, or None (reason printed)."""
    mod = common.try_import("liger_kernel.transformers")
    if mod is None:
        return None
    return mod.LigerCrossEntropyLoss()


def torch_ce(run, torch, dev, N, C, dtype_name, peer, loss_fn=None):
    case = "cross_entropy fwd+bwd"
    shape = f"{N}x{C}"
    gpu = dev == "cuda"
    o = ours(N, C, dtype_name, gpu)
    if not run.wanted(peer, case):
        return
    if loss_fn is None and peer.startswith("liger"):
        run.skip(peer, case, shape, "liger_kernel not installed", ours=o)
        return
    dtype = getattr(torch, dtype_name)
    try:
        import torch.nn.functional as F
        fn = loss_fn or F.cross_entropy
        itemsize = torch.finfo(dtype).bits // 8
        sets = common.l2_rotation_sets(N * C * itemsize, common.torch_l2_bytes(torch)) if gpu else 1
        g = torch.Generator(device=dev)
        g.manual_seed(1)
        xs = [(2 * torch.randn(N, C, generator=g, device=dev)).to(dtype).requires_grad_()
              for _ in range(sets)]
        t = (torch.arange(N, device=dev) * 7919) % C

        def call(i):
            x = xs[i % sets]
            x.grad = None
            fn(x, t).backward()

        secs, reps = common.time_torch(run, torch, gpu, call)
        run.record(peer, case, shape, secs, ce_bytes(N, C, itemsize), "B/s", ours=o,
                   dtype=dtype_name, repeats=reps)
    except Exception as e:
        run.skip(peer, case, shape, common.error_text(e), ours=o)
    finally:
        if gpu:
            torch.cuda.empty_cache()


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    if args.device == "cuda":
        torch = common.torch_cuda()
        if torch is not None:
            print(common.describe_torch(torch))
            shapes = ([(1024, 4096), (8192, 1024)] if args.quick
                      else [(8192, 32768), (65536, 1024), (2048, 131072)])
            liger = liger_loss()
            for N, C in shapes:
                torch_ce(run, torch, "cuda", N, C, "float32", "pytorch eager")
                torch_ce(run, torch, "cuda", N, C, "float32", "liger", liger)
            N, C = shapes[0]
            torch_ce(run, torch, "cuda", N, C, "bfloat16", "pytorch eager")
            torch_ce(run, torch, "cuda", N, C, "bfloat16", "liger", liger)
    else:
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            N, C = (256, 1024) if args.quick else (1024, 4096)
            for dt in ("float64", "float32"):
                torch_ce(run, torch, "cpu", N, C, dt, "pytorch cpu")
    return run.finish(f"losses peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
