#!/usr/bin/env python3
"""The report writer of the GPU check (profiling/gpu_check.sh), and the small helpers it needs.

Standard library only: the GPU machine has python3 but no extra packages.

  gpu_report.py report --log DIR --out DIR    report.md and junit.xml from what the phases left
                                              in the log folder; prints the verdict; exit status
                                              0 for PASS, 1 for FAIL or INCOMPLETE
  gpu_report.py headline --prefix Gpu_        stdin: `genai_bench --benchmark_list_tests`;
                                              prints a --benchmark_filter regex selecting the
                                              first case of every benchmark family
  gpu_report.py pack-logs --log DIR --out FILE [--limit-mib 15]
                                              the log folder as one .tar.gz under the limit
                                              (large logs keep their head and tail)
  gpu_report.py source-state --root DIR [--carry DIR] [--write DIR]
                                              the commit and whether the tree had uncommitted
                                              changes; --write records it in DIR/SOURCE_STATE
                                              and DIR/SOURCE_FILES (pack_deps.sh), for a copy
                                              of the tree that has no .git

The log folder (written by gpu_check.sh; the unit tests in tests/gpu_check/ build fixtures of it):

  meta.tsv               key<TAB>value: plan, mode (gpu | rehearse), total_s, root, carry,
                         gpu, compute_capability, driver, driver_cuda, nvcc, archs, host, date
  phases.tsv             one line per phase in plan order: name, state, seconds, budget, rc, note
                         state: done | incomplete (stopped at its budget) | not-run
  phase-<name>.log       the output of each phase
  configure.log, build.log                  build
  ctest-cpu.xml                             cpu-tests (CTest's --output-junit)
  ctest-gpu-1.xml, ctest-gpu-2.xml          gpu-tests: the parity tests, then the other GPU tests
  san/<tool>.programs.tsv                   memcheck / racecheck / initcheck / synccheck: every
                                            test program and how many GPU tests it has
  san/<tool>.<program>.log, .rc             one run; no .rc: the phase was stopped during it
  san/<tool>.<program>.rc holds the exit status; san/tool.txt names the tool that ran
  ("none" in a rehearsal, where the programs run without compute-sanitizer)
  bench.json, bench.txt, bench.stderr, bench.rc, bench-filter.txt          bench
  peers.jsonl, peers.<script>.txt, peers.<script>.rc, peers.<script>.only  peers
"""

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "peers"))
import common as peers_common  # noqa: E402  (profiling/peers/common.py: plain Python too)

SANITIZER_TOOLS = ("memcheck", "racecheck", "initcheck", "synccheck")
GPU_ONLY_PHASES = SANITIZER_TOOLS
PHASE_WHAT = {
    "carry": "the carried dependencies (.carry/)",
    "build": "configure and build",
    "cpu-tests": "ctest, the whole suite (CPU build)",
    "gpu-tests": "the GPU tests, parity first",
    "memcheck": "compute-sanitizer memcheck over the GPU tests",
    "racecheck": "compute-sanitizer racecheck over the GPU tests",
    "initcheck": "compute-sanitizer initcheck over the GPU tests",
    "synccheck": "compute-sanitizer synccheck over the GPU tests",
    "bench": "genai_bench",
    "peers": "the peer scripts of profiling/peers/",
}

PASSED, FAILED, INCOMPLETE, NA, NOT_RUN = "passed", "FAILED", "incomplete", "n/a", "not run"


# ---- reading the log folder ------------------------------------------------------------------

def read(path, default=""):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def read_tsv_dict(path):
    out = {}
    for line in read(path).splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            out[k] = v
    return out


def read_int(path):
    """The integer in a file (an exit status), or None when the file is missing or empty."""
    s = read(path, "").strip()
    try:
        return int(s)
    except ValueError:
        return None


class Phase:
    """One row of phases.tsv and the verdict derived from it and from the phase's outputs."""

    def __init__(self, name, state, seconds, budget, rc, note):
        self.name, self.state, self.note = name, state, note
        self.seconds, self.budget, self.rc = seconds, budget, rc
        self.status, self.detail = NOT_RUN, note
        self.section = []  # markdown lines for the phase's own section of the report
        self.tests = []  # TestCase list (cpu-tests, gpu-tests)
        self.sanitizer_rows = []  # (program, GPU tests, verdict, detail) (sanitizer phases)

    def verdict_cell(self):
        if self.status == INCOMPLETE:
            return f"incomplete at {self.seconds} s"
        if self.status == NA:
            return "not available here"
        if self.status == FAILED:
            return "**FAILED**"
        return self.status


def read_phases(log):
    phases = []
    for line in read(os.path.join(log, "phases.tsv")).splitlines():
        parts = line.split("\t")
        if len(parts) < 5:
            continue
        name, state, seconds, budget, rc = parts[:5]
        note = parts[5] if len(parts) > 5 else ""
        phases.append(Phase(name, state, _int(seconds), _int(budget), _int(rc), note))
    return phases


def _int(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


# ---- JUnit (CTest --output-junit) --------------------------------------------------------------

class TestCase:
    def __init__(self, name, outcome, seconds, why, output):
        self.name, self.outcome, self.seconds = name, outcome, seconds  # outcome: pass|fail|skip
        self.why, self.output = why, output


def failure_excerpt(output, limit=8):
    """The lines that say why a gtest failed: from the first '...: Failure' on, else the end."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if re.search(r":\d+: Failure$", line.rstrip()) or "C++ exception" in line:
            return [l.rstrip() for l in lines[i:i + limit] if not l.startswith("[  FAILED")]
    tail = [l.rstrip() for l in lines if l.strip() and not l.startswith("[")]
    return tail[-limit:]


def skip_reason(output):
    """GTEST_SKIP() prints '<file>:<line>: Skipped' and the reason on the next line."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.rstrip().endswith(": Skipped") and i + 1 < len(lines):
            return lines[i + 1].strip() or "skipped"
    return "skipped"


def read_junit(path):
    """CTest's JUnit file -> [TestCase]; raises ValueError when it cannot be read."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise ValueError(f"{os.path.basename(path)}: {e}") from e
    cases = []
    for tc in root.iter("testcase"):
        name = tc.get("name", "?")
        status = tc.get("status", "")
        out = tc.findtext("system-out") or ""
        secs = float(tc.get("time", "0") or 0)
        fail = tc.find("failure")
        if fail is not None or status == "fail":
            msg = fail.get("message", "") if fail is not None else ""
            lines = failure_excerpt(out)
            why = "; ".join(l.strip() for l in lines[:3]) or msg or "failed"
            cases.append(TestCase(name, "fail", secs, why, lines))
        elif status in ("notrun", "disabled"):
            sk = tc.find("skipped")
            msg = sk.get("message", "") if sk is not None else status
            if msg == "SKIP_REGULAR_EXPRESSION_MATCHED":
                cases.append(TestCase(name, "skip", secs, skip_reason(out), []))
            elif status == "disabled":
                cases.append(TestCase(name, "skip", secs, "disabled", []))
            else:  # CTest could not run it (missing executable, ...): a failure
                cases.append(TestCase(name, "fail", secs, f"not run: {msg}", []))
        else:
            cases.append(TestCase(name, "pass", secs, "", []))
    return cases


def count(cases):
    n = {"pass": 0, "fail": 0, "skip": 0}
    for c in cases:
        n[c.outcome] += 1
    return n


def md(s):
    """Text safe inside a markdown table cell."""
    return str(s).replace("|", "/").replace("\n", " ")


# ---- phase verdicts --------------------------------------------------------------------------

def last_line(log, ph):
    lines = [l.strip() for l in read(os.path.join(log, f"phase-{ph.name}.log")).splitlines()
             if l.strip()]
    return lines[-1][:200] if lines else ""


def judge_build(ph, log, meta):
    if ph.state == "incomplete":
        ph.status = INCOMPLETE
        ph.detail = "stopped at its budget" + (f"; last output: {last_line(log, ph)}"
                                               if last_line(log, ph) else "")
        return
    if ph.rc == 0:
        ph.status = PASSED
        warnings = sum(1 for l in read(os.path.join(log, "build.log")).splitlines()
                       if "warning" in l)
        ph.detail = ph.note + (f"; {warnings} lines mention warnings" if warnings else "")
        return
    ph.status = FAILED
    errs = [l for l in (read(os.path.join(log, "configure.log")) +
                        read(os.path.join(log, "build.log"))).splitlines()
            if re.search(r"error|Error|FAILED", l)]
    ph.detail = ph.note or f"exit status {ph.rc}"
    if errs:
        ph.detail += f": {errs[0].strip()[:200]}"
        ph.section = ["```"] + [l[:300] for l in errs[:30]] + ["```"]


def judge_carry(ph, log, meta):
    text = read(os.path.join(log, f"phase-{ph.name}.log"))
    problems = [l.strip() for l in text.splitlines() if "ERROR" in l or "MISSING" in l]
    if ph.state == "incomplete":
        ph.status, ph.detail = INCOMPLETE, "stopped at its budget"
    elif ph.rc == 0:
        ph.status, ph.detail = PASSED, ph.note
    else:
        ph.status = FAILED
        ph.detail = "; ".join(problems[:3]) or ph.note or f"exit status {ph.rc}"
    if problems:
        ph.section = ["```"] + problems[:30] + ["```"]


def test_lines(cases, every):
    """Per-test lines: a FAIL line per failure, a PASS line per passed test when `every`, and
    one SKIP line per reason (naming every skipped test when `every`)."""
    lines = []
    for c in cases:
        if c.outcome == "fail":
            lines.append(f"- FAIL `{c.name}` -- {md(c.why)}")
        elif every and c.outcome == "pass":
            lines.append(f"- PASS `{c.name}` ({c.seconds:.2f} s)")
    reasons = {}
    for c in cases:
        if c.outcome == "skip":
            reasons.setdefault(c.why, []).append(c.name)
    for why, names in reasons.items():
        shown = names if every else names[:1]
        lines.append(f"- SKIP {len(names)} -- {md(why)}: " + ", ".join(f"`{n}`" for n in shown)
                     + ("" if len(shown) == len(names) else ", ..."))
    failed = [c for c in cases if c.outcome == "fail" and c.output]
    for c in failed[:10]:
        lines += ["", f"`{c.name}`:", "", "```"] + c.output + ["```"]
    return lines


def judge_tests(ph, log, meta, files, gpu):
    cases, problems = [], []
    for f in files:
        p = os.path.join(log, f)
        if os.path.exists(p):
            try:
                cases += read_junit(p)
            except ValueError as e:
                problems.append(str(e))
    n = count(cases)
    summary = f"{len(cases)} tests: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped"
    ph.tests = cases
    rehearse = meta.get("mode") == "rehearse"
    if problems:
        ph.status, ph.detail = FAILED, "; ".join(problems)
    elif n["fail"]:
        ph.status = FAILED
        ph.detail = summary + ": " + ", ".join(c.name for c in cases if c.outcome == "fail")[:300]
    elif ph.state == "incomplete":
        ph.status, ph.detail = INCOMPLETE, summary + " before the budget ran out"
    elif not cases:
        ph.status = FAILED
        said = [l.strip() for f in files for l in read(os.path.join(
            log, f.replace(".xml", ".log"))).splitlines() if "No tests were found" in l]
        ph.detail = ph.note or (f"no test results (ctest exit status {ph.rc}"
                                + (f": {said[0]}" if said else "") + ")")
    elif ph.rc not in (0, None):
        ph.status, ph.detail = FAILED, f"{summary}, but ctest exited with status {ph.rc}"
    elif gpu and n["pass"] == 0:
        skips = [c.why for c in cases if c.outcome == "skip"]
        if rehearse:
            ph.status = NA
            ph.detail = f"{n['skip']} GPU tests ran and skipped ({skips[0] if skips else ''})"
        else:
            ph.status = FAILED
            ph.detail = (f"no GPU test ran: all {n['skip']} skipped"
                         + (f" ({skips[0]})" if skips else ""))
    else:
        ph.status, ph.detail = PASSED, summary
    if ph.note and ph.status in (PASSED, NA):
        ph.detail += f"; {ph.note}"
    ph.section = [summary + ".", ""] + test_lines(cases, every=gpu) if cases else []


def parse_gtest_counts(text):
    """(passed, failed, skipped) of a gtest run: its summary lines when it finished, else the
    per-test lines so far (a run stopped midway)."""
    def summary(word):
        m = re.findall(r"^\[  %s +\] (\d+) tests?" % word, text, re.M)
        return int(m[-1]) if m else None

    def per_test(word):
        return len(re.findall(r"^\[ +%s +\] \S+ \(\d+ ms\)" % word, text, re.M))

    finished = summary("PASSED") is not None
    return tuple((summary(w) or 0) if finished else per_test(o)
                 for w, o in (("PASSED", "OK"), ("FAILED", "FAILED"), ("SKIPPED", "SKIPPED")))


def sanitizer_run_verdict(tool, text, rc, sanitizer):
    """(verdict, detail) of one program under one tool: clean | FAIL | stopped | rehearsed.

    Clean needs the tool's summary with 0 errors AND the tests passing under it: a summary of
    zero errors from a program that crashed or skipped everything checked nothing."""
    passed, failed, skipped = parse_gtest_counts(text)
    tests = f"{passed} passed" + (f", {failed} failed" if failed else "") + \
        (f", {skipped} skipped" if skipped else "")
    if rc is None:
        return "stopped", f"stopped by the phase budget ({tests} so far)"
    if rc in (124, 137):
        return "stopped", f"stopped by its time limit (exit {rc}; {tests} so far)"
    if sanitizer == "none":
        if rc != 0 or failed:
            return "FAIL", f"exit status {rc} without the tool ({tests})"
        return "rehearsed", f"ran without compute-sanitizer: {tests}"
    if tool == "racecheck":
        m = re.findall(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, "
                       r"(\d+) warnings?\)", text)
        summary = m[-1] if m else None
        errors = int(summary[1]) if summary else None
        summary_s = (f"{summary[0]} hazards ({summary[1]} errors, {summary[2]} warnings)"
                     if summary else "")
    else:
        m = re.findall(r"ERROR SUMMARY: (\d+) errors?", text)
        errors = int(m[-1]) if m else None
        summary_s = f"{errors} errors" if m else ""
    if errors is None:
        said = [l.strip("= ").strip() for l in text.splitlines()
                if re.match(r"=+ *(Error|Device not supported)", l)]
        return "FAIL", (f"no summary line from compute-sanitizer (exit {rc}; {tests})"
                        + (f": {said[0][:200]}" if said else ""))
    if errors:
        first = [l.strip("= ").strip() for l in text.splitlines()
                 if l.startswith("=========") and re.search(r"Invalid|Error|Race|Hazard|barrier|"
                                                           r"Uninitialized|error", l)
                 and "SUMMARY" not in l]
        return "FAIL", summary_s + (f": {first[0][:200]}" if first else "")
    if rc != 0 or failed:
        return "FAIL", f"{summary_s}, but the tests failed under the tool (exit {rc}; {tests})"
    if passed == 0:
        return "FAIL", f"{summary_s}, but no test ran to completion ({tests}): nothing checked"
    return "clean", f"{summary_s}; {tests}"


def judge_sanitizer(ph, log, meta):
    tool = ph.name
    sdir = os.path.join(log, "san")
    sanitizer = read(os.path.join(sdir, "tool.txt")).strip() or "compute-sanitizer"
    programs = []
    for line in read(os.path.join(sdir, f"{tool}.programs.tsv")).splitlines():
        parts = line.split("\t")
        if len(parts) == 2:
            programs.append((parts[0], _int(parts[1]) if _int(parts[1]) is not None else -1))
    rows = []
    for prog, n in programs:
        if n < 0:
            rows.append((prog, 0, "FAIL", "the program did not start (--gtest_list_tests failed)"))
            continue
        if n == 0:
            continue
        logf = os.path.join(sdir, f"{tool}.{prog}.log")
        if not os.path.exists(logf):
            rows.append((prog, n, "not run", "the phase ended before it started"))
            continue
        v, d = sanitizer_run_verdict(tool, read(logf), read_int(os.path.join(
            sdir, f"{tool}.{prog}.rc")), sanitizer)
        rows.append((prog, n, v, d))
    ph.sanitizer_rows = rows
    without = [p for p, n in programs if n == 0]
    bad = [r for r in rows if r[2] == "FAIL"]
    clean = [r for r in rows if r[2] == "clean"]
    rehearse = meta.get("mode") == "rehearse"
    if bad:
        ph.status = FAILED
        ph.detail = f"{len(bad)} of {len(rows)} programs: " + "; ".join(
            f"{r[0]}: {r[3]}" for r in bad)[:400]
    elif ph.state == "incomplete":
        ph.status = INCOMPLETE
        ph.detail = f"{len(clean)} of {len(rows)} programs clean before the budget ran out"
    elif rehearse:
        ph.status = NA
        ph.detail = (f"compute-sanitizer needs a GPU; rehearsed: {len(rows)} programs with GPU "
                     f"tests found and run without the tool")
    elif ph.rc not in (0, None) and not rows:
        ph.status, ph.detail = FAILED, ph.note or f"exit status {ph.rc}"
    elif not rows:
        ph.status, ph.detail = FAILED, "no test program has tests matching the GPU filter"
    elif len(clean) < len(rows):
        ph.status = INCOMPLETE
        ph.detail = f"{len(clean)} of {len(rows)} programs clean; the others were stopped"
    else:
        ph.status = PASSED
        ph.detail = f"{len(rows)} programs clean ({sum(r[1] for r in rows)} GPU tests)"
    sec = []
    if rows:
        sec += [f"GPU tests only (`--gtest_filter='{meta.get('gpu_filter', '*Gpu*')}'`, "
                "GENAI_TEST_SMALL=1); clean means the tool's summary shows 0 errors and the "
                "tests passed under it.", "",
                "| tool | program | GPU tests | verdict | detail |", "|---|---|---:|---|---|"]
        for prog, n, v, d in rows:
            sec.append(f"| {tool} | {prog} | {n} | {'**FAIL**' if v == 'FAIL' else v} | {md(d)} |")
    if without:
        sec += ["", "Programs without GPU tests (not run): " + ", ".join(without) + "."]
    ph.section = sec


_UNIT_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def read_bench_json(path):
    """genai_bench's JSON. A run stopped by its budget leaves the file cut short: the
    benchmarks written before the cut are recovered. Returns (data or None, truncated)."""
    text = read(path)
    if not text.strip():
        return None, False
    try:
        return json.loads(text), False
    except ValueError:
        pass
    m = re.search(r'"benchmarks"\s*:\s*\[', text)
    if not m:
        return None, True
    dec, pos, items = json.JSONDecoder(), m.end(), []
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            obj, pos = dec.raw_decode(text, pos)
        except ValueError:
            break
        items.append(obj)
    head = text[:m.start()].rstrip().rstrip(",") + "}"
    try:
        data = json.loads(head)
    except ValueError:
        data = {}
    data["benchmarks"] = items
    return data, True


def bench_rows(data):
    groups = {}
    for b in data.get("benchmarks", []):
        key = b.get("run_name", b.get("name", "?"))
        g = groups.setdefault(key, {})
        if b.get("error_occurred"):
            g["error"] = b.get("error_message", "error")
        elif b.get("run_type") == "aggregate":
            g[b.get("aggregate_name", "?")] = b
        else:
            g.setdefault("iterations", []).append(b)
    return groups


def judge_bench(ph, log, meta):
    data, truncated = read_bench_json(os.path.join(log, "bench.json"))
    rc = read_int(os.path.join(log, "bench.rc"))
    groups = bench_rows(data) if data else {}
    errors = {k: g["error"] for k, g in groups.items() if "error" in g}
    ok = len(groups) - len(errors)
    if ph.note and not groups and ph.rc:
        ph.status, ph.detail = FAILED, ph.note
    elif errors:
        ph.status = FAILED
        ph.detail = f"{len(errors)} of {len(groups)} benchmarks reported errors: " + "; ".join(
            f"{k}: {v}" for k, v in list(errors.items())[:3])[:400]
    elif ph.state == "incomplete":
        ph.status = INCOMPLETE
        ph.detail = f"{ok} benchmarks measured before the budget ran out"
    elif rc not in (0, None) or ph.rc not in (0, None):
        ph.status = FAILED
        ph.detail = f"genai_bench exit status {rc if rc not in (0, None) else ph.rc}"
        err = [l for l in read(os.path.join(log, "bench.stderr")).splitlines() if l.strip()]
        if err:
            ph.detail += f": {err[-1][:200]}"
    elif not groups:
        ph.status, ph.detail = FAILED, "no benchmark results"
    else:
        ph.status, ph.detail = PASSED, f"{ok} benchmarks"
    if ph.note and ph.status == PASSED:
        ph.detail += f"; {ph.note}"
    sec = []
    peaks = [l for l in read(os.path.join(log, "bench.stderr")).splitlines()
             if l.startswith("genai_bench:")]
    if peaks:
        sec += ["Device peaks measured in this run:", ""]
        sec += [f"- {l[len('genai_bench:'):].strip()}" for l in peaks] + [""]
    if groups:
        if truncated:
            sec += ["(bench.json was cut short by the budget: the rows below were recovered.)", ""]
        sec += [f"{meta.get('bench_args', '')}. GPU time from CUDA events, CPU time from the "
                "wall clock. GB/s counts compulsory bytes (read + written); % of peak is against "
                "the D2D copy for memory-bound rows and the matching cuBLAS GEMM for GEMM rows.",
                "", "| benchmark | time | CV | bytes/call | GB/s | TFLOP/s | % of peak |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for name, g in groups.items():
            short = re.sub(r"/(manual_time|real_time)$", "", name)
            b = g.get("median") or (g.get("iterations") or [None])[0]
            if b is None:
                sec.append(f"| `{short}` | error: {md(g.get('error', '?'))} | | | | | |")
                continue
            cv = g.get("cv")
            cv_s = f"{100 * cv['real_time']:.1f}%" if cv and "real_time" in cv else ""
            bw, fr, pk, by = b.get("bw"), b.get("flop_rate"), b.get("peak_frac"), b.get("bytes")
            sec.append(
                f"| `{short}` | {b['real_time']:.4g} {b.get('time_unit', 'ns')} | {cv_s} | "
                f"{'' if by is None else f'{by / 2**20:.1f} MiB'} | "
                f"{'' if bw is None else f'{bw / 1e9:.1f}'} | "
                f"{'' if fr is None else f'{fr / 1e12:.2f}'} | "
                f"{'' if pk is None else f'{100 * pk:.1f}%'} |")
    ph.section = sec


def judge_peers(ph, log, meta):
    scripts = sorted(f[len("peers."):-len(".txt")] for f in os.listdir(log)
                     if f.startswith("peers.") and f.endswith(".txt"))
    results = []
    for line in read(os.path.join(log, "peers.jsonl")).splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:
            pass
    rows, failed, stopped = [], [], []
    for s in scripts:
        rc = read_int(os.path.join(log, f"peers.{s}.rc"))
        only = read(os.path.join(log, f"peers.{s}.only")).strip()
        text = read(os.path.join(log, f"peers.{s}.txt"))
        unavailable = sorted(set(re.findall(r"^(\S+) (?:not available|has no (?:CUDA device|GPU "
                                            r"backend))", text, re.M)))
        if rc is None or rc in (124, 137):
            stopped.append(s)
            state = "stopped by its time limit"
        elif rc != 0:
            failed.append(s)
            tail = [l for l in text.splitlines() if l.strip()]
            state = f"**exit {rc}**" + (f": {md(tail[-1][:200])}" if tail else "")
        else:
            state = "ok"
        rows.append(f"| {s} | {md(only) if only else 'all cases'} | {state} | "
                     f"{', '.join(unavailable)} |")
    n_skipped = sum(1 for r in results if r.get("seconds") is None)
    if failed:
        ph.status, ph.detail = FAILED, "failed: " + ", ".join(failed)
    elif ph.state == "incomplete":
        ph.status, ph.detail = INCOMPLETE, f"{len(results)} results before the budget ran out"
    elif not scripts:
        ph.status = NA if ph.rc in (0, None) else FAILED
        ph.detail = ph.note or "no peer scripts"
    elif not results and meta.get("mode") != "rehearse":
        ph.status = FAILED
        ph.detail = "no peer result: " + (ph.note or "see the scripts' output below")
    elif stopped:
        ph.status = INCOMPLETE
        ph.detail = f"{len(results)} results; stopped by their time limit: " + ", ".join(stopped)
    else:
        ph.status = PASSED
        ph.detail = f"{len(scripts)} scripts, {len(results)} results" + \
            (f" ({n_skipped} cases skipped by the peer)" if n_skipped else "")
    if ph.note and ph.status == PASSED:
        ph.detail += f"; {ph.note}"
    sec = []
    if rows:
        sec += ["| script | cases | exit | peers not available |", "|---|---|---|---|"] + rows
    if results:
        ours = None
        bj = os.path.join(log, "bench.json")
        data, _ = read_bench_json(bj)
        if data:
            ours = {}
            for name, g in bench_rows(data).items():
                b = g.get("median") or (g.get("iterations") or [None])[0]
                if b is not None:
                    ours[name] = b["real_time"] * _UNIT_S.get(b.get("time_unit", "ns"), 1e-9)
        sec += ["", "ratio = peer seconds / our seconds (> 1: ours faster); ours from this run's "
                "bench.json where it has the same workload.", ""]
        sec.append(peers_common.markdown_table(results, ours))
    ph.section = sec


def judge(ph, log, meta):
    if ph.state == "not-run":
        ph.status, ph.detail = NOT_RUN, ph.note or "not run"
        return
    if ph.name == "build":
        judge_build(ph, log, meta)
    elif ph.name == "carry":
        judge_carry(ph, log, meta)
    elif ph.name == "cpu-tests":
        judge_tests(ph, log, meta, ["ctest-cpu.xml"], gpu=False)
    elif ph.name == "gpu-tests":
        judge_tests(ph, log, meta, ["ctest-gpu-1.xml", "ctest-gpu-2.xml"], gpu=True)
    elif ph.name in SANITIZER_TOOLS:
        judge_sanitizer(ph, log, meta)
    elif ph.name == "bench":
        judge_bench(ph, log, meta)
    elif ph.name == "peers":
        judge_peers(ph, log, meta)
    else:
        ph.status = PASSED if ph.rc == 0 else FAILED
        ph.detail = ph.note or f"exit status {ph.rc}"
    # A phase stopped at its budget is never reported as passed.
    if ph.state == "incomplete" and ph.status == PASSED:
        ph.status = INCOMPLETE
    if meta.get("mode") == "rehearse" and ph.name in GPU_ONLY_PHASES and ph.status == PASSED:
        ph.status = NA


def overall(phases):
    """(PASS | FAIL | INCOMPLETE, the phases that made it so, in words)."""
    failed = [p.name for p in phases if p.status == FAILED]
    unfinished = [p.name for p in phases if p.status in (INCOMPLETE, NOT_RUN)]
    why = []
    if failed:
        why.append(", ".join(failed) + " failed")
    if unfinished:
        why.append(", ".join(unfinished) + " incomplete or not run")
    return ("FAIL" if failed else "INCOMPLETE" if unfinished else "PASS"), "; ".join(why)


# ---- source state ----------------------------------------------------------------------------

def git(root, *args):
    r = subprocess.run(["git", "-C", root] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(r.stderr.strip())
    return r.stdout


def tree_files(root):
    """The files a copy of the tree holds: tracked, and untracked ones git does not ignore."""
    out = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted(set(f for f in out.split("\0") if f and os.path.isfile(os.path.join(root, f))))


def tree_hash(root, files):
    """sha256 over (path, content) of the files; missing files count as different."""
    h = hashlib.sha256()
    missing = 0
    for f in files:
        h.update(f.encode() + b"\0")
        try:
            with open(os.path.join(root, f), "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
        except OSError:
            missing += 1
            h.update(b"missing")
    return h.hexdigest(), missing


def git_state(root):
    """{commit, state (clean|uncommitted), diffstat} from git, or None without a usable .git."""
    try:
        head = git(root, "rev-parse", "HEAD").strip()
        dirty = git(root, "status", "--porcelain", "--untracked-files=normal")
    except (OSError, FileNotFoundError):
        return None
    st = {"commit": head, "state": "uncommitted" if dirty.strip() else "clean", "diffstat": []}
    if dirty.strip():
        try:
            st["diffstat"] = git(root, "diff", "--stat", "HEAD").splitlines()[-40:]
        except OSError:
            pass
        st["diffstat"] += ["new file: " + l[3:] for l in dirty.splitlines()
                           if l.startswith("??")][:40]
    return st


def write_source_state(root, dest):
    st = git_state(root)
    if st is None:
        raise SystemExit(f"source-state: {root} is not a git work tree")
    files = tree_files(root)
    digest, _ = tree_hash(root, files)
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(dest, "SOURCE_FILES"), "w") as f:
        f.write("\n".join(files) + "\n")
    with open(os.path.join(dest, "SOURCE_STATE"), "w") as f:
        f.write(f"packed_at={datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}\n")
        f.write(f"commit={st['commit']}\nstate={st['state']}\ntree_sha256={digest}\n")
        f.write(f"files={len(files)}\n")
        if st["diffstat"]:
            f.write("diffstat:\n" + "\n".join(st["diffstat"]) + "\n")
    return st


def source_state(root, carry):
    """{commit, state, how, diffstat}: from git when the tree has it, else from the state
    pack_deps.sh recorded in the carry, checked against the files here."""
    st = git_state(root) if os.path.exists(os.path.join(root, ".git")) else None
    if st is not None:
        st["how"] = "git in this tree"
        return st
    text = read(os.path.join(carry, "SOURCE_STATE")) if carry else ""
    if not text:
        return {"commit": "unknown", "state": "unknown", "diffstat": [],
                "how": "no .git here and no .carry/SOURCE_STATE"}
    kv, diffstat, in_diff = {}, [], False
    for line in text.splitlines():
        if in_diff:
            diffstat.append(line)
        elif line == "diffstat:":
            in_diff = True
        elif "=" in line:
            k, v = line.split("=", 1)
            kv[k] = v
    files = [l for l in read(os.path.join(carry, "SOURCE_FILES")).splitlines() if l]
    digest, missing = tree_hash(root, files)
    if digest == kv.get("tree_sha256"):
        match = "this tree matches it"
    else:
        match = ("**this tree differs from it** (files changed after packing"
                 + (f", {missing} missing" if missing else "") + ")")
    return {"commit": kv.get("commit", "unknown"), "state": kv.get("state", "unknown"),
            "diffstat": diffstat,
            "how": f".carry/SOURCE_STATE, recorded by pack_deps.sh at {kv.get('packed_at', '?')}; "
                   + match}


# ---- the report ------------------------------------------------------------------------------

def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "unknown-gpu"


def write_junit(phases, path):
    """One JUnit file: the CTest cases, the sanitizer runs and a case per phase."""
    root = ET.Element("testsuites")

    def suite(name, cases):
        s = ET.SubElement(root, "testsuite", name=name, tests=str(len(cases)))
        nf = ns = 0
        for cname, outcome, secs, why, out in cases:
            tc = ET.SubElement(s, "testcase", name=cname, classname=name, time=f"{secs:.3f}")
            if outcome == "fail":
                ET.SubElement(tc, "failure", message=why[:500]).text = "\n".join(out)
                nf += 1
            elif outcome == "skip":
                ET.SubElement(tc, "skipped", message=why[:500])
                ns += 1
        s.set("failures", str(nf))
        s.set("skipped", str(ns))

    for ph in phases:
        if ph.tests:
            suite(ph.name, [(c.name, c.outcome, c.seconds, c.why, c.output) for c in ph.tests])
    san = []
    for ph in phases:
        for prog, _n, v, d in ph.sanitizer_rows:
            outcome = {"clean": "pass", "FAIL": "fail"}.get(v, "skip")
            san.append((f"{ph.name}.{prog}", outcome, 0.0, f"{v}: {d}", []))
    if san:
        suite("compute-sanitizer", san)
    rows = []
    for ph in phases:
        outcome = {PASSED: "pass", FAILED: "fail", INCOMPLETE: "fail"}.get(ph.status, "skip")
        rows.append((ph.name, outcome, float(ph.seconds or 0), f"{ph.verdict_cell()}: "
                     f"{ph.detail}", []))
    suite("gpu_check.phases", rows)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def report(log, out):
    meta = read_tsv_dict(os.path.join(log, "meta.tsv"))
    phases = read_phases(log)
    for ph in phases:
        judge(ph, log, meta)
    verdict, which = overall(phases)
    rehearse = meta.get("mode") == "rehearse"
    src = source_state(meta.get("root", ""), meta.get("carry", ""))
    date = meta.get("date", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    gpu = meta.get("gpu", "unknown")
    used = sum(p.seconds or 0 for p in phases)

    w = []
    title = "GPU check rehearsal (no GPU)" if rehearse else f"GPU check -- {gpu}"
    w += [f"# {title}: plan {meta.get('plan', '?')}, {date[:10]}", ""]
    verdict_line = f"Verdict: **{verdict}**" + (f" ({which})" if which else "")
    w += [verdict_line, ""]
    commit = f"`{src['commit']}`"
    if src["state"] == "uncommitted":
        commit += " **with uncommitted changes** (diffstat below)"
    elif src["state"] == "clean":
        commit += " (clean tree)"
    else:
        commit += f" (tree state {src['state']})"
    w += ["| | |", "|---|---|",
          f"| commit | {commit} -- {md(src['how'])} |",
          f"| date | {date} |"]
    if rehearse:
        w.append(f"| mode | rehearsal on a machine without a GPU: GPU-only phases are "
                 f"\"not available here\", never passed |")
    else:
        w += [f"| device | {md(gpu)} (compute capability "
              f"{meta.get('compute_capability') or '?'}) |",
              f"| driver | {meta.get('driver') or '?'} (CUDA {meta.get('driver_cuda') or '?'}) |",
              f"| nvcc | {meta.get('nvcc') or '?'}, CMAKE_CUDA_ARCHITECTURES="
              f"{meta.get('archs') or '?'} |"]
    w += [f"| host | {md(meta.get('host', '?'))} |",
          f"| plan | {meta.get('plan', '?')}: {used} s of phases, total budget "
          f"{meta.get('total_s', '?')} s |"]
    if not rehearse:
        w.append(f"| commit this report as | `profiling/results/{date[:10]}-{slug(gpu)}.md` |")
    w += ["", "| phase | what | verdict | time | budget | detail |",
          "|---|---|---|---:|---:|---|"]
    for ph in phases:
        secs = "" if ph.seconds is None or ph.state == "not-run" else f"{ph.seconds} s"
        budget = "" if ph.budget is None else f"{ph.budget} s"
        w.append(f"| {ph.name} | {PHASE_WHAT.get(ph.name, '')} | {ph.verdict_cell()} | {secs} | "
                 f"{budget} | {md(ph.detail)} |")
    if src["diffstat"]:
        w += ["", "<details><summary>uncommitted changes</summary>", "", "```"]
        w += src["diffstat"] + ["```", "</details>"]
    for ph in phases:
        if ph.section:
            w += ["", f"## {ph.name}: {ph.verdict_cell()}", ""] + ph.section
    w += ["", "Logs: `logs.tar.gz` beside this report (every phase's output: configure, build, "
          "ctest, sanitizer, benchmark and peer logs)."]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(w) + "\n")
    write_junit(phases, os.path.join(out, "junit.xml"))
    print(verdict_line.replace("**", ""))
    for ph in phases:
        print(f"  {ph.name:<10} {ph.verdict_cell().replace('**', ''):<22} {ph.detail[:150]}")
    return 0 if verdict == "PASS" else 1


# ---- helpers for the shell script ------------------------------------------------------------

def headline_filter(names, prefix):
    """A --benchmark_filter regex for the first listed case of each benchmark family (the name
    up to the first '/') whose name starts with `prefix`; the peak measurements are left out
    (genai_bench measures the peaks before its first GPU benchmark anyway)."""
    seen, picked = set(), []
    for n in names:
        n = n.strip()
        if not n.startswith(prefix) or n.startswith("Gpu_Peak"):
            continue
        fam = n.split("/", 1)[0]
        if fam not in seen:
            seen.add(fam)
            picked.append(n)
    if not picked:
        return ""
    # POSIX extended regex (Google Benchmark's std::regex::extended): escape its specials only.
    esc = [re.sub(r"([.\[\]()*+?{}|^$\\])", r"\\\1", p) for p in picked]
    return "^(" + "|".join(esc) + ")$"


def pack_logs(log, dest, limit_mib):
    """log/* into dest (.tar.gz); files over a per-file cap keep their head and tail, the cap
    halving until the archive is under the limit."""
    files = []
    for d, _dirs, names in os.walk(log):
        for n in sorted(names):
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    cap = 4 << 20
    while True:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for p in files:
                with open(p, "rb") as f:
                    data = f.read()
                if len(data) > cap:
                    data = (data[:cap // 2] + b"\n[... %d bytes left out ...]\n" %
                            (len(data) - cap) + data[-cap // 2:])
                info = tarfile.TarInfo(os.path.relpath(p, os.path.dirname(log)))
                info.size, info.mtime = len(data), int(os.path.getmtime(p))
                tar.addfile(info, io.BytesIO(data))
        if buf.tell() <= limit_mib << 20 or cap < 4096:
            break
        cap //= 2
    with open(dest, "wb") as f:
        f.write(buf.getvalue())
    return buf.tell()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--log", required=True)
    r.add_argument("--out", required=True)
    h = sub.add_parser("headline")
    h.add_argument("--prefix", default="Gpu_")
    k = sub.add_parser("pack-logs")
    k.add_argument("--log", required=True)
    k.add_argument("--out", required=True)
    k.add_argument("--limit-mib", type=int, default=15)
    s = sub.add_parser("source-state")
    s.add_argument("--root", required=True)
    s.add_argument("--carry", default="")
    s.add_argument("--write", metavar="DIR")
    a = p.parse_args(argv)
    if a.cmd == "report":
        return report(a.log, a.out)
    if a.cmd == "headline":
        print(headline_filter(sys.stdin.read().splitlines(), a.prefix))
        return 0
    if a.cmd == "pack-logs":
        size = pack_logs(a.log, a.out, a.limit_mib)
        print(f"{a.out}: {size / 2**20:.2f} MiB")
        return 0
    if a.write:
        st = write_source_state(a.root, a.write)
    else:
        st = source_state(a.root, a.carry)
    print(f"commit={st['commit']} state={st['state']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
