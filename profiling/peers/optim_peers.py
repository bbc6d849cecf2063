#!/usr/bin/env python3
"""Peers of genai's optim module on the workloads of profiling/bench_optim.cpp.

One Adam step (torch.optim.Adam defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no weight
decay) over `params` float32 parameters cut into `tensors` equal tensors, gradients given:
  GPU (--device cuda): 2^26 parameters as 1, 16 and 1024 tensors
      (Gpu_Optim/adam/params:67108864/tensors:T), with fused=True (one multi-tensor kernel, the
      peer the issue names), foreach=True (horizontally fused per-op kernels) and
      foreach=False (a per-tensor loop of ops); AdamW (weight_decay 0.01) and AMSGrad fused on
      16 tensors; SGD momentum 0.9 foreach on 16 tensors. Throughput in B/s over our byte
      count: 28 bytes per parameter (36 with AMSGrad, 20 for SGD with momentum).
  CPU (--device cpu): 2^22 parameters in 16 tensors (Cpu_Optim/adam/params:4194304/tensors:16,
      Cpu_Optim/sgd_momentum/...), torch.optim.Adam foreach=True and foreach=False, float32
      (our CPU reference computes in float too: the update is the kernel's bit-exact formula).
The step counter advances with each call, as in training (and as ours). torch.optim.Adam's
fused=True needs PyTorch >= 2.0 and a CUDA device; where it is refused the case is recorded as
skipped with the reason.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


BYTES_PER_PARAM = {"adam": 28.0, "adamw": 28.0, "amsgrad": 36.0, "sgd_momentum": 20.0}


def ours(kind, params, tensors, gpu):
    return (f"{'Gpu' if gpu else 'Cpu'}_Optim/{kind}/params:{params}/tensors:{tensors}/"
            f"{'manual_time' if gpu else 'real_time'}")


def torch_step(run, torch, dev, kind, params, tensors, impl):
    peer = f"torch.optim {impl}"
    case = kind
    shape = f"{params} params / {tensors} tensors"
    gpu = dev == "cuda"
    o = ours(kind, params, tensors, gpu)
    if not run.wanted(peer, case):
        return
    try:
        size = params // tensors
        g = torch.Generator(device=dev)
        g.manual_seed(1)
        ps = [torch.randn(size, generator=g, device=dev).requires_grad_() for _ in range(tensors)]
        for p in ps:
            p.grad = torch.randn(size, generator=g, device=dev)
        flags = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
        if kind == "sgd_momentum":
            opt = torch.optim.SGD(ps, lr=0.01, momentum=0.9, **flags)
        elif kind == "adamw":
            opt = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **flags)
        else:
            opt = torch.optim.Adam(ps, lr=1e-3, amsgrad=kind == "amsgrad", **flags)

        def call(_i):
            opt.step()

        secs, reps = common.time_torch(run, torch, gpu, call)
        run.record(peer, case, shape, secs, BYTES_PER_PARAM[kind] * params, "B/s", ours=o,
                   repeats=reps)
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
            params = 1 << 20 if args.quick else 1 << 26
            for tensors in (1, 16, 1024):
                for impl in ("fused", "foreach", "for-loop"):
                    torch_step(run, torch, "cuda", "adam", params, tensors, impl)
            for kind in ("adamw", "amsgrad"):
                torch_step(run, torch, "cuda", kind, params, 16, "fused")
            torch_step(run, torch, "cuda", "sgd_momentum", params, 16, "foreach")
    else:
        torch = common.torch_cpu()
        if torch is not None:
            print(common.describe_torch(torch))
            params = 1 << 18 if args.quick else 1 << 22
            for impl in ("foreach", "for-loop"):
                torch_step(run, torch, "cpu", "adam", params, 16, impl)
                torch_step(run, torch, "cpu", "sgd_momentum", params, 16, impl)
    return run.finish(f"optim peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
