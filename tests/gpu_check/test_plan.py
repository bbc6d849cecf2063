"""profiling/gpu_check.sh's plan runner: a phase that runs past its budget is stopped (with
everything it started) and reported "incomplete at N s" while the later phases still run; the
plan never passes its total; what lands in --out is a few plain files.

The phase that hangs is the build: a `cmake` placed first on PATH sleeps (in a child process,
as a real build's compilers would run). Run: python3 -m unittest discover -s tests/gpu_check
(CTest: gpu_check.PhaseBudget, the PlanTest cases; gpu_check.NoDeviceIsNeverAPass, the
NoGpuTest case, which needs GENAI_TEST_BUILD_DIR: a build of the project whose programs it runs)."""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "profiling", "gpu_check.sh")

SLEEPING_CMAKE = """#!/usr/bin/env bash
# A build that never ends: records its own pid and its child's, then waits.
sleep 300 &
echo "$$ $!" >> "{pids}"
wait
"""

# compute-sanitizer's shape without a GPU: run the program, then print the tool's summary.
FAKE_SANITIZER = """#!/usr/bin/env bash
while [ $# -gt 0 ]; do
  case "$1" in --tool | --error-exitcode | --print-limit) shift 2 ;; *) break ;; esac
done
"$@"
rc=$?
echo "========= ERROR SUMMARY: 0 errors"
exit $rc
"""


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent may not have reaped it yet).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def phase_rows(report):
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and not cells[0].startswith("---") and cells[0] != "phase":
            rows[cells[0]] = cells
    return rows


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gpu_check_plan.")
        self.bin = os.path.join(self.tmp, "bin")
        os.makedirs(self.bin)
        self.out = os.path.join(self.tmp, "out")
        self.pids = os.path.join(self.tmp, "pids")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def run_check(self, *args, env=None):
        e = dict(os.environ)
        e["PATH"] = self.bin + os.pathsep + e["PATH"]
        e.pop("OUT", None)
        e.update(env or {})
        t0 = time.monotonic()
        r = subprocess.run(["bash", SCRIPT, "--out", self.out] + list(args), env=e,
                           capture_output=True, text=True, timeout=120)
        return r, time.monotonic() - t0

    def report(self):
        with open(os.path.join(self.out, "report.md")) as f:
            return f.read()

    def assert_flat_outputs(self):
        entries = os.listdir(self.out)
        self.assertLessEqual(len(entries), 8, entries)
        for e in entries:
            p = os.path.join(self.out, e)
            self.assertTrue(os.path.isfile(p) and not os.path.islink(p), e)
            self.assertLess(os.path.getsize(p), 16 << 20, e)
        self.assertIn("report.md", entries)
        self.assertIn("junit.xml", entries)
        self.assertIn("logs.tar.gz", entries)


class PlanTest(Base):
    def test_a_phase_past_its_budget_is_stopped_and_the_plan_goes_on(self):
        write_exe(os.path.join(self.bin, "cmake"), SLEEPING_CMAKE.format(pids=self.pids))
        build = os.path.join(self.tmp, "build")  # no CMakeCache.txt: the build configures
        r, secs = self.run_check("--rehearse", "--phases", "build,bench", "--budget", "build=2",
                                 "--build-dir", build)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertLess(secs, 30, r.stdout)
        rows = phase_rows(self.report())
        m = re.fullmatch(r"incomplete at (\d+) s", rows["build"][2])
        self.assertTrue(m, rows["build"])
        self.assertIn(int(m.group(1)), (2, 3, 4))  # whole seconds, on a loaded machine
        self.assertEqual(rows["build"][4], "2 s")
        # The later phase ran (and found no genai_bench to run), the unselected ones did not.
        self.assertEqual(rows["bench"][2], "**FAILED**")
        self.assertIn("genai_bench was not built", rows["bench"][5])
        self.assertEqual(rows["cpu-tests"][2], "not run")
        self.assertIn("Verdict: **FAIL** (bench failed; carry, build, cpu-tests, gpu-tests, "
                      "memcheck, peers incomplete or not run)", self.report())
        # The hung build and the process it started are gone.
        with open(self.pids) as f:
            pids = [int(p) for p in f.read().split()]
        self.assertEqual(len(pids), 2)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertFalse([p for p in pids if alive(p)])
        self.assert_flat_outputs()

    def test_the_plan_never_passes_its_total(self):
        write_exe(os.path.join(self.bin, "cmake"), SLEEPING_CMAKE.format(pids=self.pids))
        r, secs = self.run_check("--rehearse", "--total", "12", "--phases", "build,bench",
                                 "--budget", "build=100", "--budget", "bench=100",
                                 "--build-dir", os.path.join(self.tmp, "build"))
        self.assertEqual(r.returncode, 1)
        self.assertLess(secs, 12 + 3, r.stdout)  # 3 s for starting bash and Python here
        rows = phase_rows(self.report())
        # 12 s less the 3 s kept for the report, shared in proportion: 4 s each.
        self.assertEqual(rows["build"][4], "4 s")
        self.assertTrue(rows["build"][2].startswith("incomplete at"), rows["build"])
        self.assertEqual(rows["bench"][2], "**FAILED**")



class NoGpuTest(Base):
    def test_no_usable_gpu_is_never_a_pass(self):
        """The GPU plan on this machine (built, no GPU): the sanitizer runs find every GPU test
        skipped and the GPU benchmarks erroring, and say so: FAIL, not PASS."""
        build = os.environ.get("GENAI_TEST_BUILD_DIR")
        if not build or not os.path.isdir(os.path.join(build, "tests")):
            self.skipTest("GENAI_TEST_BUILD_DIR (a build of the project) not given")
        write_exe(os.path.join(self.bin, "compute-sanitizer"), FAKE_SANITIZER)
        phases = "memcheck,bench" if os.path.exists(
            os.path.join(build, "profiling", "genai_bench")) else "memcheck"
        r, _ = self.run_check("--phases", phases, "--build-dir", build,
                              env={"GENAI_CHECK_LOG": os.path.join(self.tmp, "logs")})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        text = self.report()
        rows = phase_rows(text)
        self.assertEqual(rows["memcheck"][2], "**FAILED**")
        self.assertIn("no test ran to completion", rows["memcheck"][5])
        self.assertRegex(text, r"\| memcheck \| rng_gpu_test \| \d+ \| \*\*FAIL\*\* \| 0 errors, but "
                               r"no test ran to completion \(0 passed, \d+ skipped\)")
        if "bench" in phases:
            self.assertEqual(rows["bench"][2], "**FAILED**")
            self.assertIn("benchmarks reported errors", rows["bench"][5])
            self.assertIn("no CUDA device", rows["bench"][5])
        self.assert_flat_outputs()


if __name__ == "__main__":
    unittest.main()
