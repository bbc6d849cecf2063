"""Shared helpers of the peer scripts (profiling/peers/README.md).

Timing follows genai_bench's rules (profiling/README.md, "Timing methodology"): warm-up calls
first, then N timed calls, and the median is reported.
  * PyTorch on CUDA: a CUDA event pair around each call on the current stream, read after
    torch.cuda.synchronize() (GPU time, as genai_bench's manual time).
  * JAX: the wall clock around fn(...) followed by jax.block_until_ready on its result
    (JAX has no user-visible events; dispatch of a jitted call is a few microseconds).
  * CPU (NumPy, PyTorch CPU): the wall clock (time.perf_counter).
A case may be given a time budget: after the warm-up it stops repeating once the measured time
exceeds the budget (at least one timed call), so slow peers (e.g. gesvd looped over 10 000
matrices) still finish.

Results: one JSON object per line (--json FILE, appended) with the fields
  peer, case, shape, seconds, throughput, unit
plus: device, dtype, repeats, ours (the genai_bench benchmark name of the same workload, for
the side-by-side), and optional note / extra. A markdown table is printed at the end.

`python3 common.py compare PEERS.jsonl BENCH.json` puts the peers beside genai_bench's medians
(its --benchmark_out JSON): ratio = peer seconds / our seconds (> 1: ours is faster).
`python3 common.py threads PEERS1.jsonl PEERSN.jsonl BENCH1.json BENCHN.json` does it on one
thread and on all threads in one table, each time with its spread (fastest-slowest call or
repetition); cpu_compare.sh writes it.
Plain Python only: this file imports neither numpy, torch nor jax at module level.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

# JAX preallocates 75 % of the GPU at its first use; the peers share the process with PyTorch.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


# ---- optional imports ------------------------------------------------------------------------

def try_import(name):
    """The module, or None with '<name> not available (<reason>)' printed."""
    try:
        mod = __import__(name)
        for part in name.split(".")[1:]:
            mod = getattr(mod, part)
        return mod
    except Exception as e:  # ImportError, or a broken install raising something else
        print(f"{name} not available ({type(e).__name__}: {e})", flush=True)
        return None


def torch_cuda():
    """torch when it is importable and sees a CUDA device, else None (reason printed)."""
    torch = try_import("torch")
    if torch is None:
        print("torch not available: skipping the PyTorch GPU peers", flush=True)
        return None
    if not torch.cuda.is_available():
        print("torch has no CUDA device: skipping the PyTorch GPU peers", flush=True)
        return None
    return torch


def torch_cpu():
    torch = try_import("torch")
    if torch is None:
        print("torch not available: skipping the PyTorch CPU peers", flush=True)
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return torch


def jax_gpu():
    """(jax, jax.numpy) when JAX imports and has a GPU backend, else None."""
    jax = try_import("jax")
    if jax is None:
        print("jax not available: skipping the JAX peers", flush=True)
        return None
    try:
        devs = jax.devices("gpu")
    except Exception as e:
        print(f"jax has no GPU backend ({e}): skipping the JAX peers", flush=True)
        return None
    if not devs:
        print("jax has no GPU backend: skipping the JAX peers", flush=True)
        return None
    import jax.numpy as jnp
    return jax, jnp


def cupy_gpu():
    cp = try_import("cupy")
    if cp is None:
        print("cupy not available: skipping the CuPy peers", flush=True)
        return None
    try:
        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no device")
    except Exception as e:
        print(f"cupy has no CUDA device ({e}): skipping the CuPy peers", flush=True)
        return None
    return cp


def numpy_cpu():
    np = try_import("numpy")
    if np is None:
        print("numpy not available: skipping the NumPy peers", flush=True)
    return np


# ---- command line ------------------------------------------------------------------------------

def parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cuda: the GPU peers (PyTorch, JAX) at the issue's sizes; "
                        "cpu: NumPy and PyTorch CPU at genai_bench's CPU sizes")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and few repeats (a smoke run, not a measurement)")
    p.add_argument("--json", metavar="FILE",
                   help="append one JSON object per result to FILE")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed calls per case (median reported); default 10, 3 with --quick")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed calls first; default 3, 1 with --quick")
    p.add_argument("--budget", type=float, default=60.0,
                   help="stop repeating a case after this many timed seconds (>= 1 call)")
    p.add_argument("--only", metavar="REGEX",
                   help="run only the cases whose 'peer/case' matches REGEX")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU peers: threads for NumPy's BLAS and PyTorch (sets OMP_NUM_THREADS "
                        "and friends before they load); our CPU references run on one thread, "
                        "so --threads 1 is the like-for-like row. Default: the libraries' own")
    p.add_argument("--bench-json", metavar="FILE",
                   help="genai_bench's --benchmark_out JSON: add ours and the ratio to the table")
    return p


class Run:
    """The settings of one script run and the results it collected."""

    def __init__(self, args):
        self.args = args
        self.repeats = args.repeats or (3 if args.quick else 10)
        self.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
        self.budget = args.budget
        self.results = []
        if getattr(args, "threads", None):
            # Read by OpenBLAS / MKL / OpenMP when NumPy or PyTorch loads: set before either is
            # imported (the scripts import them only after parsing the command line).
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "BLIS_NUM_THREADS"):
                os.environ[var] = str(args.threads)
        import re
        self._only = re.compile(args.only) if args.only else None

    def wanted(self, peer, case):
        return self._only is None or bool(self._only.search(f"{peer}/{case}"))

    def record(self, peer, case, shape, seconds, work, unit, *, ours=None, device=None,
               dtype="float32", repeats=None, note=None, extra=None):
        """One result: work / seconds is the throughput in `unit` (e.g. 'chain-steps/s')."""
        rec = {
            "peer": peer,
            "case": case,
            "shape": shape,
            "seconds": seconds,
            "throughput": (work / seconds) if (work is not None and seconds and seconds > 0)
            else None,
            "unit": unit,
            "device": device or self.args.device,
            "dtype": dtype,
            "repeats": repeats,
            "ours": ours,
        }
        if rec["device"] == "cpu":
            rec["threads"] = os.environ.get("OMP_NUM_THREADS") or "default"
        global _last_range
        if _last_range is not None:
            rec["min"], rec["max"] = _last_range
            _last_range = None
        if note:
            rec["note"] = note
        if extra:
            rec["extra"] = extra
        self.results.append(rec)
        tp = rec["throughput"]
        print(f"  {peer:<28} {case:<30} {shape:<22} {fmt_seconds(seconds):>10}  "
              f"{fmt_rate(tp, unit)}", flush=True)
        if self.args.json:
            with open(self.args.json, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return rec

    def skip(self, peer, case, shape, reason, ours=None):
        """A case that could not run (out of memory, unsupported driver): printed and kept."""
        print(f"  {peer:<28} {case:<30} {shape:<22} skipped: {reason}", flush=True)
        rec = {"peer": peer, "case": case, "shape": shape, "seconds": None, "throughput": None,
               "unit": None, "device": self.args.device, "ours": ours, "note": f"skipped: {reason}"}
        self.results.append(rec)
        if self.args.json:
            with open(self.args.json, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def finish(self, title):
        ours = load_bench(self.args.bench_json) if self.args.bench_json else None
        print()
        print(markdown_table(self.results, ours, title=title))
        return 0


# ---- timing ------------------------------------------------------------------------------------

# The fastest and slowest timed call of the last timing loop, recorded with the next result (the
# spread beside its median).
_last_range = None


def _loop(call, timed_call, warmup, repeats, budget):
    # Warm-up calls are not timed for the report; a single one suffices when one call already
    # takes more than a tenth of the budget (slow peers: the first call did the warming).
    for i in range(warmup):
        t0 = time.perf_counter()
        call(i)
        if time.perf_counter() - t0 > budget / 10:
            break
    times, spent, i = [], 0.0, warmup
    while len(times) < max(1, repeats):
        t = timed_call(i)
        times.append(t)
        spent += t
        i += 1
        if spent > budget:
            break
    global _last_range
    _last_range = (min(times), max(times))
    return statistics.median(times), len(times)


def time_torch_cuda(torch, fn, warmup, repeats, budget=60.0):
    """Median GPU seconds of fn(call_index) between CUDA events on the current stream.

    Each timed call is bracketed by events and followed by a synchronisation, so a call's time
    includes any host-side waits it makes itself (e.g. a Python loop of eager launches, whose
    launch overhead is the thing being measured)."""
    start = torch.cuda.Event(enable_timing=True)
    stop = torch.cuda.Event(enable_timing=True)

    def timed(i):
        torch.cuda.synchronize()
        start.record()
        fn(i)
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / 1e3

    def untimed(i):
        fn(i)
        torch.cuda.synchronize()

    return _loop(untimed, timed, warmup, repeats, budget)


def time_cupy(cp, fn, warmup, repeats, budget=60.0):
    """As time_torch_cuda, with CuPy's events on its current stream."""

    def timed(i):
        cp.cuda.Device().synchronize()
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn(i)
        stop.record()
        stop.synchronize()
        return cp.cuda.get_elapsed_time(start, stop) / 1e3

    def untimed(i):
        fn(i)
        cp.cuda.Device().synchronize()

    return _loop(untimed, timed, warmup, repeats, budget)


def time_jax(jax, fn, warmup, repeats, budget=60.0):
    """Median wall seconds of jax.block_until_ready(fn(call_index)); warm-up includes the
    compilation (the first call), which is never timed."""

    def untimed(i):
        jax.block_until_ready(fn(i))

    def timed(i):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(i))
        return time.perf_counter() - t0

    return _loop(untimed, timed, max(1, warmup), repeats, budget)


def time_cpu(fn, warmup, repeats, budget=60.0):
    """Median wall seconds of fn(call_index) (CPU peers)."""

    def timed(i):
        t0 = time.perf_counter()
        fn(i)
        return time.perf_counter() - t0

    return _loop(fn, timed, warmup, repeats, budget)


def time_torch(run, torch, gpu, fn):
    """time_torch_cuda (gpu) or time_cpu of fn with the run's warm-up, repeats and budget."""
    if gpu:
        return time_torch_cuda(torch, fn, run.warmup, run.repeats, run.budget)
    return time_cpu(fn, run.warmup, run.repeats, run.budget)


def error_text(e):
    """An exception as one short line for a skipped case's reason."""
    return f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"


def is_oom(e):
    s = str(e).lower()
    return "out of memory" in s or "resource_exhausted" in s or "cuda_error_out_of_memory" in s


def l2_rotation_sets(bytes_per_set, l2_bytes):
    """genai_bench's rule: copies of an input so consecutive calls touch >= 2x L2 (1..8)."""
    if bytes_per_set <= 0 or not l2_bytes:
        return 1
    return int(min(8, max(1, math.ceil(2 * l2_bytes / bytes_per_set))))


def torch_l2_bytes(torch):
    try:
        return int(torch.cuda.get_device_properties(0).L2_cache_size)
    except Exception:
        return 50 * 2**20  # H100's 50 MiB


def describe_torch(torch):
    s = f"torch {torch.__version__}"
    if torch.cuda.is_available():
        s += f", CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}"
    s += f", {torch.get_num_threads()} CPU threads"
    return s


# ---- formatting --------------------------------------------------------------------------------

def fmt_seconds(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.1f} us"


def fmt_rate(v, unit):
    if v is None:
        return ""
    for p, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= f:
            return f"{v / f:.3f} {p}{unit}"
    return f"{v:.3g} {unit}"


_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load_bench_runs(path):
    """genai_bench's JSON -> {run_name: (median, min, max) seconds} over its repetitions (the
    plain entries; the median aggregate where present, else their median)."""
    with open(path) as f:
        data = json.load(f)
    runs = {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred") or b.get("run_type") == "aggregate":
            continue
        secs = b["real_time"] * _UNIT_S.get(b.get("time_unit", "ns"), 1e-9)
        runs.setdefault(b.get("run_name", b.get("name")), []).append(secs)
    medians = load_bench(path)
    return {k: (medians.get(k, statistics.median(v)), min(v), max(v)) for k, v in runs.items()}


def load_bench(path):
    """genai_bench's JSON (Google Benchmark --benchmark_out) -> {run_name: median seconds}.
    Uses the 'median' aggregate when present (--benchmark_repetitions), else the median of
    the plain iteration entries. Errored benchmarks are left out."""
    with open(path) as f:
        data = json.load(f)
    groups = {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        key = b.get("run_name", b.get("name"))
        g = groups.setdefault(key, {"iter": []})
        secs = b["real_time"] * _UNIT_S.get(b.get("time_unit", "ns"), 1e-9)
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                g["median"] = secs
        else:
            g["iter"].append(secs)
    out = {}
    for k, g in groups.items():
        if "median" in g:
            out[k] = g["median"]
        elif g["iter"]:
            out[k] = statistics.median(g["iter"])
    return out


def markdown_table(results, ours=None, title=None):
    """results: dicts as written by Run.record; ours: {benchmark name: seconds} or None."""
    lines = []
    if title:
        lines += [f"### {title}", ""]
    head = "| peer | case | shape | dtype | time | throughput |"
    sep = "|---|---|---|---|---:|---:|"
    if ours is not None:
        head += " genai_bench | ours | ratio (peer / ours) |"
        sep += "---|---:|---:|"
    if not results:
        return "\n".join(lines + ["(no results: every peer was unavailable or filtered out)"])
    lines += [head, sep]
    for r in results:
        tp = fmt_rate(r.get("throughput"), r.get("unit") or "")
        t = fmt_seconds(r.get("seconds")) if r.get("seconds") is not None else (r.get("note") or "-")
        row = (f"| {r['peer']} | {r['case']} | {r['shape']} | {r.get('dtype', '')} | {t} | "
               f"{tp} |")
        if ours is not None:
            name = r.get("ours") or ""
            o = ours.get(name)
            ratio = (r["seconds"] / o) if (o and r.get("seconds")) else None
            row += (f" `{name}` | {fmt_seconds(o) if o else '-'} | "
                    f"{'' if ratio is None else f'{ratio:.2f}x'} |")
        lines.append(row)
    return "\n".join(lines)


def _spread(median, lo, hi):
    if median is None:
        return "-"
    if lo is None or hi is None:
        return fmt_seconds(median)
    return f"{fmt_seconds(median)} ({fmt_seconds(lo)}–{fmt_seconds(hi)})"


def threads_table(peers_one, peers_all, ours_one, ours_all, before=None):
    """One row per peer result: the peer on one thread and with its default threads, ours on one
    thread and on all threads (medians, with the fastest and slowest repetition), and the two
    ratios peer / ours (> 1: ours faster). peers_*: result dicts (Run.record); ours_*:
    {benchmark name: (median, min, max)}; before (optional, same form): an older build of ours
    on one thread, for the before / after column."""
    def key(r):
        return (r["peer"], r["case"], r["shape"], r.get("dtype", ""))

    default = {key(r): r for r in peers_all}
    head = ("| peer | case | shape | dtype | peer, 1 thread | ours, 1 thread | ratio | "
            "peer, default threads | ours, all threads | ratio |")
    sep = "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
    if before is not None:
        head += " ours before, 1 thread | ratio before |"
        sep += "---:|---:|"
    lines = [head, sep]

    def ratio(peer, ours):
        return f"{peer / ours[0]:.2f}x" if peer and ours and ours[0] else ""

    for r in peers_one:
        name = r.get("ours") or ""
        o1, on = ours_one.get(name), ours_all.get(name)
        d = default.get(key(r), {})
        p1, pn = r.get("seconds"), d.get("seconds")
        row = (f"| {r['peer']} | {r['case']} | {r['shape']} | {r.get('dtype', '')} | "
               f"{_spread(p1, r.get('min'), r.get('max')) if p1 else (r.get('note') or '-')} | "
               f"{_spread(*o1) if o1 else '-'} | {ratio(p1, o1)} | "
               f"{_spread(pn, d.get('min'), d.get('max')) if pn else (d.get('note') or '-')} | "
               f"{_spread(*on) if on else '-'} | {ratio(pn, on)} |")
        if before is not None:
            b = before.get(name)
            row += f" {_spread(*b) if b else '-'} | {ratio(p1, b)} |"
        lines.append(row)
    return "\n".join(lines)


def _read_jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def _threads_main(argv):
    p = argparse.ArgumentParser(
        prog="common.py threads",
        description="Peers and ours on one thread and on all threads, side by side.")
    p.add_argument("peers_one", help="peer results run with --threads 1 (JSON lines)")
    p.add_argument("peers_all", help="peer results with their default threads (JSON lines)")
    p.add_argument("ours_one", help="genai_bench JSON, GENAI_NUM_THREADS=1")
    p.add_argument("ours_all", help="genai_bench JSON, the backend's default thread count")
    p.add_argument("--before", help="genai_bench JSON of an older build, one thread")
    a = p.parse_args(argv)
    print(threads_table(_read_jsonl(a.peers_one), _read_jsonl(a.peers_all),
                        load_bench_runs(a.ours_one), load_bench_runs(a.ours_all),
                        load_bench_runs(a.before) if a.before else None))
    return 0


def _compare_main(argv):
    p = argparse.ArgumentParser(
        prog="common.py compare",
        description="Peer results beside genai_bench's medians: ratio = peer seconds / ours.")
    p.add_argument("peers", help="JSON lines written by the peer scripts (--json)")
    p.add_argument("bench", nargs="?", help="genai_bench --benchmark_out JSON (bench.json)")
    a = p.parse_args(argv)
    results = []
    with open(a.peers) as f:
        for line in f:
            line = line.strip()
            if line:
                results.append(json.loads(line))
    ours = load_bench(a.bench) if a.bench else None
    print(markdown_table(results, ours, title="Peers" + (" against genai_bench" if ours else "")))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "compare":
        sys.exit(_compare_main(sys.argv[2:]))
    if len(sys.argv) >= 2 and sys.argv[1] == "threads":
        sys.exit(_threads_main(sys.argv[2:]))
    print("usage: python3 common.py compare PEERS.jsonl [BENCH.json]\n"
          "       python3 common.py threads PEERS1.jsonl PEERSN.jsonl BENCH1.json BENCHN.json "
          "[--before BENCH.json]", file=sys.stderr)
    sys.exit(2)
