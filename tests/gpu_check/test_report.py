"""The GPU check's report writer (profiling/gpu_report.py) on fixture inputs: the verdicts and
the per-test and per-tool lines that report.md prints, and junit.xml.

Run: python3 -m unittest discover -s tests/gpu_check  (CTest: gpu_check.ReportWriter)."""

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(HERE, "fixtures")
sys.path.insert(0, os.path.join(ROOT, "profiling"))
import gpu_report  # noqa: E402


class LogDir:
    """A log folder as gpu_check.sh leaves it: meta.tsv, phases.tsv and the phases' files."""

    def __init__(self, mode="gpu", plan="first"):
        self.tmp = tempfile.mkdtemp(prefix="gpu_report_test.")
        self.log = os.path.join(self.tmp, "logs")
        self.out = os.path.join(self.tmp, "out")
        os.makedirs(os.path.join(self.log, "san"))
        self.meta = {"plan": plan, "mode": mode, "total_s": "420", "root": ROOT, "carry": "",
                     "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
                     "driver": "580.65", "driver_cuda": "13.0", "nvcc": "13.0",
                     "archs": "90", "gpu_filter": "*Gpu*", "host": "Linux, 16 cores",
                     "date": "2026-11-27 11:00 UTC"}
        self.phases = []

    def phase(self, name, state="done", seconds=10, budget=60, rc=0, note=""):
        self.phases.append((name, state, seconds, budget, rc, note))

    def copy(self, fixture, name):
        shutil.copy(os.path.join(FIX, fixture), os.path.join(self.log, name))

    def write(self, name, text):
        with open(os.path.join(self.log, name), "w") as f:
            f.write(text)

    def sanitizer_run(self, tool, program, fixture, rc):
        self.copy(fixture, f"san/{tool}.{program}.log")
        if rc is not None:
            self.write(f"san/{tool}.{program}.rc", f"{rc}\n")

    def report(self):
        self.write("meta.tsv", "".join(f"{k}\t{v}\n" for k, v in self.meta.items()))
        self.write("phases.tsv", "".join("\t".join(str(x) for x in p) + "\n"
                                         for p in self.phases))
        with open(os.devnull, "w") as null:
            stdout, sys.stdout = sys.stdout, null
            try:
                rc = gpu_report.report(self.log, self.out)
            finally:
                sys.stdout = stdout
        with open(os.path.join(self.out, "report.md")) as f:
            return rc, f.read()

    def close(self):
        shutil.rmtree(self.tmp)


def phase_row(text, name):
    """The cells of a phase's row in the report's phase table."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] == name:
            return cells
    raise AssertionError(f"no row for phase {name}")


def verdict(text):
    lines = [l for l in text.splitlines() if l.startswith("Verdict:")]
    assert len(lines) == 1, lines
    return lines[0]


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.d = LogDir()

    def tearDown(self):
        self.d.close()

    def test_gpu_tests_with_a_failure_and_a_skip(self):
        self.d.phase("build", seconds=70, budget=190)
        self.d.phase("gpu-tests", rc=1)
        self.d.copy("ctest-gpu.xml", "ctest-gpu-1.xml")
        rc, text = self.d.report()
        self.assertEqual(rc, 1)
        self.assertEqual(verdict(text), "Verdict: **FAIL** (gpu-tests failed)")
        self.assertEqual(phase_row(text, "build")[2], "passed")
        row = phase_row(text, "gpu-tests")
        self.assertEqual(row[2], "**FAILED**")
        self.assertIn("4 tests: 2 passed, 1 failed, 1 skipped", row[5])
        self.assertIn("- FAIL `LangevinGpu.EverySamplerMatchesReference` -- "
                      "../../tests/langevin_gpu_test.cpp:88: Failure", text)
        self.assertIn("- PASS `InfoGpu.AllOpsMatchReference` (0.41 s)", text)
        self.assertIn("- PASS `RngGpu.FillsMatchReferenceBitForBit`", text)
        self.assertIn("- SKIP 1 -- needs two CUDA devices (found 1): "
                      "`BufferGpu.PeerCopyBetweenTwoDevices`", text)
        # The failure's own lines are quoted, the gtest summary lines are not.
        self.assertIn("  Actual: false (relative norm error 0.031", text)
        self.assertNotIn("[  FAILED  ] LangevinGpu", text)

    def test_every_gpu_test_skipped_on_the_gpu_machine_fails(self):
        self.d.phase("gpu-tests")
        self.d.copy("ctest-gpu-skipped.xml", "ctest-gpu-1.xml")
        rc, text = self.d.report()
        self.assertEqual(rc, 1)
        row = phase_row(text, "gpu-tests")
        self.assertEqual(row[2], "**FAILED**")
        self.assertIn("no GPU test ran: all 2 skipped (no CUDA device: CUDA driver version", row[5])

    def test_every_gpu_test_skipped_in_a_rehearsal_is_not_available_and_passes(self):
        self.d.meta["mode"] = "rehearse"
        self.d.phase("gpu-tests")
        self.d.copy("ctest-gpu-skipped.xml", "ctest-gpu-1.xml")
        rc, text = self.d.report()
        self.assertEqual(rc, 0)
        self.assertEqual(verdict(text), "Verdict: **PASS**")
        self.assertEqual(phase_row(text, "gpu-tests")[2], "not available here")

    def test_sanitizer_verdicts_per_program(self):
        d = self.d
        d.phase("memcheck", rc=0)
        d.write("san/tool.txt", "compute-sanitizer\n")
        d.write("san/memcheck.programs.tsv", "info_test\t3\nattention_test\t7\nlinalg_test\t8\n"
                "rng_test\t1\nio_test\t0\ncli_test\t-1\n")
        d.sanitizer_run("memcheck", "info_test", "memcheck.clean.log", 0)
        d.sanitizer_run("memcheck", "attention_test", "memcheck.errors.log", 86)
        d.sanitizer_run("memcheck", "linalg_test", "memcheck.timeout.log", 124)
        d.sanitizer_run("memcheck", "rng_test", "memcheck.allskipped.log", 0)
        rc, text = d.report()
        self.assertEqual(rc, 1)
        self.assertEqual(verdict(text), "Verdict: **FAIL** (memcheck failed)")
        self.assertIn("| memcheck | info_test | 3 | clean | 0 errors; 3 passed |", text)
        self.assertIn("| memcheck | attention_test | 7 | **FAIL** | 2 errors: Invalid __global__ "
                      "read of size 4 bytes |", text)
        self.assertIn("| memcheck | linalg_test | 8 | stopped | stopped by its time limit "
                      "(exit 124; 1 passed so far) |", text)
        self.assertIn("| memcheck | rng_test | 1 | **FAIL** | 0 errors, but no test ran to "
                      "completion (0 passed, 1 skipped): nothing checked |", text)
        self.assertIn("| memcheck | cli_test | 0 | **FAIL** | the program did not start", text)
        self.assertIn("Programs without GPU tests (not run): io_test.", text)
        self.assertIn("3 of 5 programs", phase_row(text, "memcheck")[5])

    def test_zero_errors_but_failing_tests_under_the_tool_fail(self):
        v, detail = gpu_report.sanitizer_run_verdict(
            "memcheck", "[  FAILED  ] 1 test, listed below:\n========= ERROR SUMMARY: 0 errors\n",
            1, "compute-sanitizer")
        self.assertEqual(v, "FAIL")
        self.assertIn("the tests failed under the tool (exit 1", detail)
        v, detail = gpu_report.sanitizer_run_verdict("initcheck", "[  PASSED  ] 2 tests.\n", 0,
                                                     "compute-sanitizer")
        self.assertEqual((v, detail[:29]), ("FAIL", "no summary line from compute-"))
        # The tool refusing the device (seen on gVisor machines) is quoted.
        v, detail = gpu_report.sanitizer_run_verdict(
            "memcheck", "========= Error: Device not supported\n", 1, "compute-sanitizer")
        self.assertEqual((v, detail), ("FAIL", "no summary line from compute-sanitizer (exit 1; "
                                               "0 passed): Error: Device not supported"))

    def test_racecheck_summary(self):
        d = self.d
        d.meta["plan"] = "deep"
        d.phase("racecheck")
        d.write("san/tool.txt", "compute-sanitizer\n")
        d.write("san/racecheck.programs.tsv", "info_test\t3\nattention_test\t7\n")
        d.sanitizer_run("racecheck", "info_test", "racecheck.clean.log", 0)
        d.sanitizer_run("racecheck", "attention_test", "racecheck.hazard.log", 86)
        rc, text = d.report()
        self.assertEqual(rc, 1)
        self.assertIn("| racecheck | info_test | 3 | clean | 0 hazards (0 errors, 0 warnings); "
                      "3 passed |", text)
        self.assertIn("| racecheck | attention_test | 7 | **FAIL** | 1 hazards (1 errors, "
                      "0 warnings): Error: Race reported between Write access", text)

    def test_clean_sanitizer_phase_passes(self):
        d = self.d
        d.phase("memcheck")
        d.write("san/tool.txt", "compute-sanitizer\n")
        d.write("san/memcheck.programs.tsv", "info_test\t3\n")
        d.sanitizer_run("memcheck", "info_test", "memcheck.clean.log", 0)
        rc, text = d.report()
        self.assertEqual(rc, 0)
        self.assertEqual(phase_row(text, "memcheck")[2], "passed")
        self.assertIn("1 programs clean (3 GPU tests)", phase_row(text, "memcheck")[5])

    def test_a_phase_stopped_at_its_budget_is_incomplete_and_later_phases_count(self):
        d = self.d
        d.phase("memcheck", state="incomplete", seconds=60, budget=60, rc=124)
        d.write("san/tool.txt", "compute-sanitizer\n")
        d.write("san/memcheck.programs.tsv", "info_test\t3\nlinalg_test\t8\nrng_test\t1\n")
        d.sanitizer_run("memcheck", "info_test", "memcheck.clean.log", 0)
        d.sanitizer_run("memcheck", "linalg_test", "memcheck.timeout.log", None)
        d.phase("bench", rc=0)
        d.copy("bench.json", "bench.json")
        d.write("bench.rc", "0\n")
        rc, text = d.report()
        self.assertEqual(rc, 1)
        self.assertEqual(verdict(text),
                         "Verdict: **FAIL** (bench failed; memcheck incomplete or not run)")
        row = phase_row(text, "memcheck")
        self.assertEqual(row[2], "incomplete at 60 s")
        self.assertIn("1 of 3 programs clean before the budget ran out", row[5])
        self.assertIn("| memcheck | linalg_test | 8 | stopped | stopped by the phase budget", text)
        self.assertIn("| memcheck | rng_test | 1 | not run | the phase ended before it started |",
                      text)
        self.assertEqual(phase_row(text, "bench")[2], "**FAILED**")  # the Svd error below

    def test_bench_table_and_errors(self):
        d = self.d
        d.phase("bench", rc=0, note="headline: the first case of each Gpu_* family")
        d.copy("bench.json", "bench.json")
        d.write("bench.rc", "0\n")
        d.write("bench.stderr", "genai_bench: D2D copy 3021.5 GB/s (read + write)\n")
        rc, text = d.report()
        self.assertEqual(rc, 1)
        row = phase_row(text, "bench")
        self.assertEqual(row[2], "**FAILED**")
        self.assertIn("1 of 3 benchmarks reported errors: Gpu_Svd/batch:10000/m:16/n:16/k:0/"
                      "method:3/manual_time: cusolverDnSgesvdjBatched", row[5])
        self.assertIn("| `Gpu_Info/entropy/rows:16384/K:4096/validate:0` | 95.5 us | 1.2% | "
                      "256.0 MiB | 2811.0 |  | 92.8% |", text)
        self.assertIn("| `Gpu_Langevin/ula/chains:1048576/d:2/steps:100` | 1.84 ms |  | 16.0 MiB "
                      "| 910.0 | 10.87 | 33.0% |", text)
        self.assertIn("| `Gpu_Svd/batch:10000/m:16/n:16/k:0/method:3` | error: "
                      "cusolverDnSgesvdjBatched: CUSOLVER_STATUS_INVALID_VALUE |", text)
        self.assertIn("- D2D copy 3021.5 GB/s (read + write)", text)

    def test_bench_json_cut_short_is_recovered(self):
        data, truncated = gpu_report.read_bench_json(os.path.join(FIX, "bench-truncated.json"))
        self.assertTrue(truncated)
        self.assertEqual(data["context"]["num_cpus"], 16)
        self.assertEqual([b["aggregate_name"] for b in data["benchmarks"]],
                         ["mean", "median", "cv"])

    def test_peers_beside_our_medians(self):
        d = self.d
        d.phase("bench", rc=0)
        d.copy("bench.json", "bench.json")
        d.phase("peers", rc=0)
        d.copy("peers.jsonl", "peers.jsonl")
        d.write("peers.langevin.txt", "jax not available (ModuleNotFoundError: No module)\n")
        d.write("peers.langevin.rc", "0\n")
        d.write("peers.langevin.only", "^pytorch eager/ula_gmm8$\n")
        d.write("peers.attention.txt", "Traceback (most recent call last):\nRuntimeError: boom\n")
        d.write("peers.attention.rc", "1\n")
        d.write("peers.linalg.txt", "torch.linalg.svd default tall\n")  # no .rc: stopped
        rc, text = d.report()
        self.assertEqual(rc, 1)
        row = phase_row(text, "peers")
        self.assertEqual((row[2], row[5]), ("**FAILED**", "failed: attention"))
        self.assertIn("| langevin | ^pytorch eager/ula_gmm8$ | ok | jax |", text)
        self.assertIn("| attention | all cases | **exit 1**: RuntimeError: boom |  |", text)
        self.assertIn("| linalg | all cases | stopped by its time limit |  |", text)
        # 12.1 ms for the peer against our 1.84 ms median: ratio 6.58x.
        self.assertIn("| pytorch eager | ula_gmm8 | 1048576x2, 100 steps | float32 | 12.100 ms |",
                      text)
        self.assertIn("| 1.840 ms | 6.58x |", text)
        self.assertIn("skipped: No available kernel. Aborting execution.", text)

    def test_no_peer_result_on_the_gpu_machine_fails(self):
        self.d.phase("peers", rc=0)
        self.d.write("peers.langevin.txt", "torch has no CUDA device: skipping the PyTorch GPU "
                     "peers\njax not available (ModuleNotFoundError: No module named 'jax')\n")
        self.d.write("peers.langevin.rc", "0\n")
        rc, text = self.d.report()
        self.assertEqual(rc, 1)
        self.assertEqual(phase_row(text, "peers")[2], "**FAILED**")
        self.assertIn("| langevin | all cases | ok | jax, torch |", text)

    def test_rehearsal_marks_gpu_only_phases_not_available_and_passes(self):
        d = self.d
        d.meta["mode"] = "rehearse"
        d.phase("build", note="cpu up to date (reused)")
        d.phase("cpu-tests")
        d.copy("ctest-gpu.xml", "ctest-cpu.xml")
        d.phase("memcheck")
        d.write("san/tool.txt", "none\n")
        d.write("san/memcheck.programs.tsv", "rng_test\t1\n")
        d.sanitizer_run("memcheck", "rng_test", "memcheck.allskipped.log", 0)
        d.phase("peers", state="not-run", note="not selected (--phases)")
        rc, text = d.report()
        self.assertEqual(phase_row(text, "memcheck")[2], "not available here")
        self.assertIn("| memcheck | rng_test | 1 | rehearsed | ran without compute-sanitizer: "
                      "0 passed, 1 skipped |", text)
        self.assertEqual(phase_row(text, "peers")[2], "not run")
        # cpu-tests lists failures, and skips by reason only (no PASS lines).
        self.assertEqual(phase_row(text, "cpu-tests")[2], "**FAILED**")
        self.assertNotIn("- PASS", text)
        self.assertEqual(rc, 1)
        self.assertIn("rehearsal on a machine without a GPU", text)
        self.assertNotIn("commit this report as", text)

    def test_a_passing_gpu_report_names_its_file(self):
        self.d.phase("build")
        rc, text = self.d.report()
        self.assertEqual(rc, 0)
        self.assertIn("| commit this report as | `profiling/results/2026-11-27-nvidia-h100-80gb-"
                      "hbm3.md` |", text)

    def test_build_failure_quotes_the_errors(self):
        self.d.phase("build", rc=1)
        self.d.write("build.log", "[12/63] Building CUDA object kernels/info.cu.o\n"
                     "kernels/info.cu(42): error: identifier \"foo\" is undefined\n"
                     "FAILED: CMakeFiles/genai_kernels.dir/kernels/info.cu.o\n")
        rc, text = self.d.report()
        self.assertEqual(rc, 1)
        self.assertIn('kernels/info.cu(42): error: identifier "foo" is undefined',
                      phase_row(text, "build")[5])
        self.assertIn("## build: **FAILED**", text)

    def test_junit_xml(self):
        d = self.d
        d.phase("gpu-tests", rc=1)
        d.copy("ctest-gpu.xml", "ctest-gpu-1.xml")
        d.phase("memcheck")
        d.write("san/tool.txt", "compute-sanitizer\n")
        d.write("san/memcheck.programs.tsv", "info_test\t3\nattention_test\t7\n")
        d.sanitizer_run("memcheck", "info_test", "memcheck.clean.log", 0)
        d.sanitizer_run("memcheck", "attention_test", "memcheck.errors.log", 86)
        d.report()
        root = ET.parse(os.path.join(d.out, "junit.xml")).getroot()
        suites = {s.get("name"): s for s in root.iter("testsuite")}
        self.assertEqual(sorted(suites), ["compute-sanitizer", "gpu-tests", "gpu_check.phases"])
        self.assertEqual((suites["gpu-tests"].get("tests"), suites["gpu-tests"].get("failures"),
                          suites["gpu-tests"].get("skipped")), ("4", "1", "1"))
        san = {c.get("name"): c for c in suites["compute-sanitizer"].iter("testcase")}
        self.assertIsNone(san["memcheck.info_test"].find("failure"))
        self.assertIsNotNone(san["memcheck.attention_test"].find("failure"))
        self.assertEqual(suites["gpu_check.phases"].get("failures"), "2")


class SourceStateTest(unittest.TestCase):
    def test_from_the_carry_when_the_tree_has_no_git(self):
        tmp = tempfile.mkdtemp(prefix="gpu_report_src.")
        try:
            tree, carry = os.path.join(tmp, "tree"), os.path.join(tmp, "carry")
            os.makedirs(os.path.join(tree, "src"))
            files = ["a.txt", "src/b.cpp"]
            for f in files:
                with open(os.path.join(tree, f), "w") as fh:
                    fh.write(f)
            digest, _ = gpu_report.tree_hash(tree, files)
            os.makedirs(carry)
            with open(os.path.join(carry, "SOURCE_FILES"), "w") as fh:
                fh.write("\n".join(files) + "\n")
            with open(os.path.join(carry, "SOURCE_STATE"), "w") as fh:
                fh.write(f"packed_at=2026-11-27 10:00 UTC\ncommit=abc123\nstate=uncommitted\n"
                         f"tree_sha256={digest}\nfiles=2\ndiffstat:\n src/b.cpp | 2 +-\n")
            st = gpu_report.source_state(tree, carry)
            self.assertEqual((st["commit"], st["state"]), ("abc123", "uncommitted"))
            self.assertIn("this tree matches it", st["how"])
            self.assertEqual(st["diffstat"], [" src/b.cpp | 2 +-"])
            with open(os.path.join(tree, "src/b.cpp"), "a") as fh:
                fh.write("changed after packing")
            self.assertIn("this tree differs from it", gpu_report.source_state(tree, carry)["how"])
            self.assertEqual(gpu_report.source_state(tree, "")["commit"], "unknown")
        finally:
            shutil.rmtree(tmp)

    def test_from_git(self):
        if shutil.which("git") is None or not os.path.exists(os.path.join(ROOT, ".git")):
            self.skipTest("no git checkout")
        st = gpu_report.source_state(ROOT, "")
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
        self.assertEqual(st["commit"], head)
        self.assertIn(st["state"], ("clean", "uncommitted"))


class HelpersTest(unittest.TestCase):
    def test_headline_filter_takes_the_first_case_of_each_family(self):
        names = ["Gpu_Peak/d2d_copy/manual_time",
                 "Cpu_Info/entropy/rows:4096/K:1024/validate:0/real_time",
                 "Gpu_Info/entropy/rows:16384/K:4096/validate:0/manual_time",
                 "Gpu_Info/l1_norm/rows:16384/K:4096/validate:0/manual_time",
                 "Gpu_Svd/batch:1/m:100000/n:256/k:0/method:1/manual_time",
                 "Gpu_Svd/batch:10000/m:16/n:16/k:0/method:3/manual_time",
                 "Gpu_Odd/x:0.5/(a|b)/manual_time"]
        f = gpu_report.headline_filter(names, "Gpu_")
        self.assertEqual(f, "^(Gpu_Info/entropy/rows:16384/K:4096/validate:0/manual_time|"
                            "Gpu_Svd/batch:1/m:100000/n:256/k:0/method:1/manual_time|"
                            "Gpu_Odd/x:0\\.5/\\(a\\|b\\)/manual_time)$")
        import re
        self.assertEqual([n for n in names if re.search(f, n)],
                         [names[2], names[4], names[6]])
        self.assertEqual(gpu_report.headline_filter(names, "Nope_"), "")

    def test_pack_logs_stays_under_the_limit(self):
        tmp = tempfile.mkdtemp(prefix="gpu_report_pack.")
        try:
            log = os.path.join(tmp, "logs")
            os.makedirs(os.path.join(log, "san"))
            with open(os.path.join(log, "build.log"), "wb") as f:
                f.write(os.urandom(3 << 20))  # incompressible: must be cut to fit 1 MiB
            with open(os.path.join(log, "san", "memcheck.x.log"), "w") as f:
                f.write("ERROR SUMMARY: 0 errors\n")
            dest = os.path.join(tmp, "logs.tar.gz")
            size = gpu_report.pack_logs(log, dest, 1)
            self.assertLessEqual(size, 1 << 20)
            self.assertEqual(os.path.getsize(dest), size)
            with tarfile.open(dest) as tar:
                names = tar.getnames()
                self.assertEqual(sorted(names), ["logs/build.log", "logs/san/memcheck.x.log"])
                small = tar.extractfile("logs/san/memcheck.x.log").read()
                self.assertEqual(small, b"ERROR SUMMARY: 0 errors\n")
                big = tar.extractfile("logs/build.log").read()
                self.assertIn(b"bytes left out ...]", big)
        finally:
            shutil.rmtree(tmp)

    def test_command_line(self):
        r = subprocess.run([sys.executable, os.path.join(ROOT, "profiling", "gpu_report.py"),
                            "headline", "--prefix", "Cpu_"], input="Cpu_A/x:1/real_time\n",
                           capture_output=True, text=True)
        self.assertEqual((r.returncode, r.stdout), (0, "^(Cpu_A/x:1/real_time)$\n"))


if __name__ == "__main__":
    unittest.main()
