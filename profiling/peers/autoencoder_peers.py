#!/usr/bin/env python3
"""Peers of genai's autoencoder module on the workload of profiling/bench_autoencoder.cpp.

One training epoch of C1's VAE at k = 32 (Gpu_VaeEpoch / Cpu_VaeEpoch): encoder 784 -> 512 ->
256 -> 64 (mu, log sigma^2), decoder 32 -> 256 -> 512 -> 784, ReLU, Bernoulli decoder
(binary_cross_entropy_with_logits summed over the pixels) + KL(q(z|x) || N(0, I)), both averaged
over the batch (our vae_loss with Reduction::Mean), torch.optim.Adam(lr 1e-3), batches of 256 of
60 000 images of 28 x 28 (uniform noise in [0, 1], resident on the device), shuffled each epoch
by torch.randperm and gathered by indexing, as Autoencoder::train_epoch. One call = one epoch
(235 steps, the last batch 96 rows); epochs/s and seconds per epoch. The loss is not read back
during the epoch (as ours: one synchronisation at the end).
GPU (--device cuda): PyTorch eager, float32, TF32 off (ours is fp32 on the CUDA cores).
CPU (--device cpu): PyTorch eager float32 on the library's own threads (--threads to set them).
--quick: on the CPU an epoch of 6 000 images (no comparison with ours); on the GPU the full epoch.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

IMAGES, PIXELS = 60000, 784


def build(torch, k, hidden=(512, 256)):
    nn = torch.nn

    def mlp(sizes):
        layers = []
        for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i + 2 < len(sizes):
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    return (mlp([PIXELS, *hidden, 2 * k]), mlp([k, *reversed(hidden), PIXELS]))


def epoch_flop(k, images=IMAGES):
    macs = PIXELS * 512 + 512 * 256 + 256 * 2 * k + k * 256 + 256 * 512 + 512 * PIXELS
    return 2.0 * images * (3 * macs - PIXELS * 512)


def vae_epoch_case(torch, run, device, k, batch, images, timer):
    F = torch.nn.functional
    # Our benchmark trains on 60 000 images: a smaller (quick) epoch is not its peer.
    # genai_bench's names carry the timing suffix (Gpu: manual time; Cpu: one real-time iteration).
    suffix = "manual_time" if device == "cuda" else "iterations:1/real_time"
    ours = f"{'Gpu' if device == 'cuda' else 'Cpu'}_VaeEpoch/k:{k}/batch:{batch}/{suffix}" \
        if images == IMAGES else None
    shape = f"{images}x784, k {k}, batch {batch}"
    if not run.wanted("torch-eager", "vae_epoch"):
        return
    g = torch.Generator().manual_seed(0)
    data = torch.rand(images, PIXELS, generator=g).to(device)
    enc, dec = build(torch, k)
    enc, dec = enc.to(device), dec.to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)

    def epoch(_):
        order = torch.randperm(images, device=device)
        for s in range(0, images, batch):
            x = data[order[s:s + batch]]
            opt.zero_grad(set_to_none=True)
            h = enc(x)
            mu, logvar = h[:, :k], h[:, k:]
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            n = x.shape[0]
            recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="sum") / n
            kl = -0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp()) / n
            (recon + kl).backward()
            opt.step()

    try:
        secs, reps = timer(epoch)
        run.record("torch-eager", "vae_epoch", shape, secs, 1.0, "epochs/s", ours=ours,
                   repeats=reps, extra={"flop": epoch_flop(k, images)})
    except Exception as e:
        run.skip("torch-eager", "vae_epoch", shape, f"{type(e).__name__}: {e}", ours)


def main():
    p = common.parser(__doc__.splitlines()[0])
    args = p.parse_args()
    run = common.Run(args)
    torch = common.torch_cuda() if args.device == "cuda" else common.torch_cpu()
    if torch is None:
        return run.finish("autoencoder peers: no torch")
    gpu = args.device == "cuda"
    # --quick: a tenth of the epoch on the CPU (a smoke run); a GPU epoch is short anyway.
    images = 6000 if args.quick and not gpu else IMAGES
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = False
    vae_epoch_case(torch, run, args.device, 32, 256, images,
                   lambda fn: common.time_torch(run, torch, gpu, fn))
    return run.finish(f"autoencoder peers ({args.device}{', quick' if args.quick else ''})")


if __name__ == "__main__":
    sys.exit(main())
