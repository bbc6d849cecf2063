#!/usr/bin/env python3
"""Peers of genai's nn module on the workloads of profiling/bench_nn.cpp.

MLP forward + backward (Gpu_MlpStep / Cpu_MlpStep): the tiny-diffusion shape, x 2 -> 128 ->
128 -> 128 -> 2 with the 128-wide sinusoidal time embedding (diffusers' get_timestep_embedding,
flip_sin_to_cos False, downscale_freq_shift 1, max_period 10000) concatenated to x, batch 4096,
float32. One step = forward, then backward of y with a fixed dy into every parameter's .grad
(set_to_none between steps, as ours overwrites); steps/s.
  act:3 residual:1  GELU (exact erf), hidden blocks h + GELU(W h + b): tiny-diffusion's model
  act:1 residual:0  ReLU MLP            act:2 residual:0  GELU(tanh) MLP
GPU (--device cuda): PyTorch eager; the same step captured in a CUDA graph (static inputs,
grads written in place); torch.compile(mode="max-autotune-no-cudagraphs") of the model.
CPU (--device cpu): PyTorch eager (threads: --threads, else the library's own).

MLP training step (Gpu_MlpTrainStep / Cpu_MlpTrainStep): the same model's forward, F.mse_loss
against a fixed target, backward and torch.optim.Adam; gelu_tanh and tiny-diffusion's residual
GELU; eager, the whole step (Adam capturable) in a CUDA graph, torch.compile of the model.

Linear layer (Gpu_Linear / Cpu_Linear): torch.nn.functional.linear (+ relu / gelu tanh) at
16384 x 4096 x 4096 and 4096 x 1024 x 1024 on the GPU (TF32 off, as ours), 4096 x 512 x 512 on
the CPU; its backward (dx, dW, db) by autograd; FLOP/s.

safetensors round trip (--roundtrip, no timing): a torch model's state_dict written with
safetensors.torch.save_file in genai's layout (names layers.<i>.weight / .bias, the options in
the metadata) and read back with load_file; with --read FILE, a file genai::Mlp::save wrote is
loaded with safetensors.torch.load_file, a torch model is built from its metadata and its output
on a fixed input printed (compare with `genai demo`'s).
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ACTS = {1: "relu", 2: "gelu_tanh", 3: "gelu"}


def build(torch, act, residual, t_dim=128, sizes=(2, 128, 128, 128, 2)):
    nn = torch.nn

    def activation():
        return {"relu": nn.ReLU(), "gelu_tanh": nn.GELU(approximate="tanh"),
                "gelu": nn.GELU()}[act]

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            ins = [sizes[0] + t_dim] + list(sizes[1:-1])
            self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(ins, sizes[1:]))
            self.res = [residual and 0 < l < len(ins) - 1 and ins[l] == sizes[l + 1]
                        for l in range(len(ins))]
            self.act = activation()
            half = t_dim // 2
            freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32)
                              / (half - 1.0))
            self.register_buffer("freqs", freqs)

        def forward(self, x, t):
            e = t[:, None].float() * self.freqs[None, :]
            h = torch.cat([x, torch.sin(e), torch.cos(e)], dim=-1)
            last = len(self.layers) - 1
            for l, lin in enumerate(self.layers):
                z = lin(h)
                if l == last:
                    return z
                h = h + self.act(z) if self.res[l] else self.act(z)

    return Mlp()


def mlp_flop(n, t_dim=128, sizes=(2, 128, 128, 128, 2)):
    ins = [sizes[0] + t_dim] + list(sizes[1:-1])
    macs = sum(i * o for i, o in zip(ins, sizes[1:]))
    return 2.0 * n * (3 * macs - ins[0] * sizes[1])


def mlp_case(torch, kind, act_i, residual, n, device):
    """genai_bench's name of the case, its shape column, and its inputs x, t and a third
    [n x 2] tensor (dy, or the target)."""
    ours = (f"{'Gpu' if device == 'cuda' else 'Cpu'}_{kind}/act:{act_i}/residual:{int(residual)}"
            f"/N:{n}/{'manual_time' if device == 'cuda' else 'real_time'}")
    shape = f"{n}, {ACTS[act_i]}{' res' if residual else ''}"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g).to(device)
    t = (torch.rand(n, generator=g) * 1000).to(device)
    third = torch.randn(n, 2, generator=g).to(device)
    return ours, shape, (x, t, third)


def record_variants(run, case, shape, ours, variants, timer, work=1.0, unit="steps/s",
                    extra=None):
    """Times each (peer, make) of `variants` -- make() builds the no-argument step -- and records
    work / seconds in `unit`; a variant that fails to build or run is recorded as skipped."""
    for peer, make in variants:
        if not run.wanted(peer, case):
            continue
        try:
            fn = make()
            secs, reps = timer(fn)
            run.record(peer, case, shape, secs, work, unit, ours=ours, repeats=reps, extra=extra)
        except Exception as e:
            run.skip(peer, case, shape, common.error_text(e), ours)


def mlp_cases(torch, run, device, n, timer):
    for act_i, residual in ((3, True), (1, False), (2, False)):
        ours, shape, (x, t, dy) = mlp_case(torch, "MlpStep", act_i, residual, n, device)
        model = build(torch, ACTS[act_i], residual).to(device)

        def step(m=model):
            for p in m.parameters():
                p.grad = None
            m(x, t).backward(dy)

        variants = [("torch-eager", lambda: step)]
        if device == "cuda":
            variants.append(("torch-cudagraph", lambda: cuda_graph_step(torch, model, x, t, dy)))
            variants.append(("torch-compile", lambda: (
                lambda c=torch.compile(model, mode="max-autotune-no-cudagraphs"): step(c))))
        record_variants(run, "mlp_step", shape, ours, variants, timer, extra={"flop": mlp_flop(n)})


def capture_step(torch, step):
    """`step` (static tensors, no host sync) as one CUDA graph replay: warmed up on a side
    stream as the CUDA graphs docs ask, then captured."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def mlp_train_cases(torch, run, device, n, timer):
    """One training step (Gpu_MlpTrainStep / Cpu_MlpTrainStep): forward, F.mse_loss against a
    fixed target, backward, torch.optim.Adam (lr 1e-4; the default foreach implementation
    eager, capturable=True in the CUDA graph)."""
    F = torch.nn.functional
    for act_i, residual in ((2, False), (3, True)):
        ours, shape, (x, t, target) = mlp_case(torch, "MlpTrainStep", act_i, residual, n, device)

        def make(capturable=False, compiled=False, act=ACTS[act_i], residual=residual):
            model = build(torch, act, residual).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-4, capturable=capturable)
            fwd = torch.compile(model, mode="max-autotune-no-cudagraphs") if compiled else model

            def step():
                opt.zero_grad(set_to_none=not capturable)
                F.mse_loss(fwd(x, t), target).backward()
                opt.step()
            return step

        variants = [("torch-eager", make)]
        if device == "cuda":
            variants.append(("torch-cudagraph", lambda: capture_step(torch, make(capturable=True))))
            variants.append(("torch-compile", lambda: make(compiled=True)))
        record_variants(run, "mlp_train_step", shape, ours, variants, timer,
                        extra={"flop": mlp_flop(n)})


def cuda_graph_step(torch, model, x, t, dy):
    """The step as one CUDA graph replay: gradients accumulate into static .grad tensors, which
    the graph zeroes first (as set_to_none would, without reallocating)."""
    params = list(model.parameters())

    def step():
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
        model(x, t).backward(dy)

    return capture_step(torch, step)


def linear_cases(torch, run, device, shapes, timer):
    F = torch.nn.functional
    for n, i, o in shapes:
        g = torch.Generator().manual_seed(1)
        x = torch.randn(n, i, generator=g).to(device)
        lin = torch.nn.Linear(i, o).to(device)
        dy = torch.randn(n, o, generator=g).to(device)
        acts = (0, 1, 2) if device == "cuda" else (0, 1)
        for a in acts:
            f = {0: lambda z: z, 1: F.relu, 2: lambda z: F.gelu(z, approximate="tanh")}[a]
            ours = (f"{'Gpu' if device == 'cuda' else 'Cpu'}_Linear/forward/N:{n}/in:{i}/out:{o}/act:{a}"
                    f"/{'manual_time' if device == 'cuda' else 'real_time'}")
            shape = f"{n}x{i}x{o}"
            if run.wanted("torch", f"linear_forward_{a}"):
                with torch.no_grad():
                    secs, reps = timer(lambda: f(F.linear(x, lin.weight, lin.bias)))
                run.record("torch", f"linear_forward_act{a}", shape, secs, 2.0 * n * i * o,
                           "FLOP/s", ours=ours, repeats=reps)
        xg = x.clone().requires_grad_(True)
        ours = (f"{'Gpu' if device == 'cuda' else 'Cpu'}_Linear/backward/N:{n}/in:{i}/out:{o}/act:0"
                f"/{'manual_time' if device == 'cuda' else 'real_time'}")
        y = F.linear(xg, lin.weight, lin.bias)

        def backward():
            lin.weight.grad = lin.bias.grad = xg.grad = None
            y.backward(dy, retain_graph=True)

        if run.wanted("torch", "linear_backward"):
            secs, reps = timer(backward)
            run.record("torch", "linear_backward", f"{n}x{i}x{o}", secs, 4.0 * n * i * o, "FLOP/s",
                       ours=ours, repeats=reps)


def roundtrip(torch, read_path):
    st = common.try_import("safetensors.torch")
    if st is None:
        print("safetensors not available: no round trip (pip install safetensors)")
        return
    model = build(torch, "gelu", True)
    state = {f"layers.{l}.{k}": v.detach().contiguous()
             for l, lin in enumerate(model.layers) for k, v in lin.state_dict().items()}
    meta = {"format": "genai.mlp", "sizes": "2,128,128,128,2", "activation": "gelu",
            "time_embedding_dim": "128", "flip_sin_to_cos": "false",
            "downscale_freq_shift": "1", "max_period": "10000", "scale": "1", "residual": "true"}
    path = "/tmp/genai_nn_peer.safetensors"
    st.save_file(state, path, metadata=meta)
    back = st.load_file(path)
    same = all(torch.equal(back[k], v) for k, v in state.items()) and back.keys() == state.keys()
    print(f"safetensors round trip of a torch MLP in genai's layout: {'ok' if same else 'DIFFERS'}"
          f" ({path}, readable by genai::Mlp::load)")
    if read_path:
        from safetensors import safe_open
        with safe_open(read_path, "pt") as f:
            meta = f.metadata()
        tensors = st.load_file(read_path)
        sizes = tuple(int(s) for s in meta["sizes"].split(","))
        m = build(torch, meta["activation"], meta["residual"] == "true",
                  int(meta["time_embedding_dim"]), sizes)
        for l, lin in enumerate(m.layers):
            lin.weight.data.copy_(tensors[f"layers.{l}.weight"])
            lin.bias.data.copy_(tensors[f"layers.{l}.bias"])
        x = torch.linspace(-1, 1, 2 * sizes[0]).reshape(2, sizes[0])
        t = torch.tensor([10.0, 500.0])
        with torch.no_grad():
            print(f"{read_path}: {sum(v.numel() for v in tensors.values())} parameters, "
                  f"y(x = linspace(-1, 1), t = [10, 500]) = {m(x, t).tolist()}")


def main():
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--roundtrip", action="store_true", help="the safetensors round trip only")
    p.add_argument("--read", metavar="FILE", help="with --roundtrip: a file genai::Mlp::save wrote")
    args = p.parse_args()
    run = common.Run(args)
    torch = common.torch_cuda() if args.device == "cuda" else common.torch_cpu()
    if torch is None:
        return run.finish("nn peers: no torch")
    if args.roundtrip:
        roundtrip(torch, args.read)
        return 0
    n = 512 if args.quick else 4096
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # ours is fp32 on the CUDA cores

        def timer(fn):
            return common.time_torch_cuda(torch, lambda i: fn(), run.warmup, run.repeats,
                                          run.budget)

        mlp_cases(torch, run, "cuda", n, timer)
        mlp_train_cases(torch, run, "cuda", n, timer)
        shapes = [(1024, 512, 512)] if args.quick else [(16384, 4096, 4096), (4096, 1024, 1024)]
        linear_cases(torch, run, "cuda", shapes, timer)
    else:
        def timer(fn):
            return common.time_cpu(lambda i: fn(), run.warmup, run.repeats, run.budget)

        mlp_cases(torch, run, "cpu", n, timer)
        mlp_train_cases(torch, run, "cpu", n, timer)
        linear_cases(torch, run, "cpu", [(1024, 256, 256)] if args.quick else [(4096, 512, 512)],
                     timer)
    return run.finish(f"nn peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
