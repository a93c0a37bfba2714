#!/usr/bin/env python3
"""Aggregate admission across N worlds of one manager under the load driver,
beside the machine's ed25519 verification rate on all cores measured in the
same run (the floor every admitted input pays), and against one world alone.

    python3 bench/manager/admission.py [--binary PATH] [--worlds 8] [--rule zip215|strict|both]
                                       [--bots 4096] [--seconds 10] [--profile dev]
                                       [--encoding json|binary] [--concurrency LANES]

1. The floor: `EA_BENCH_ONLY=signatures cargo bench -p everarcade-bench --bench speed
   --profile <profile>` (built into $CARGO_TARGET_DIR): strict `verify_strict` one by
   one on every core, and ZIP-215 a batch per core on every core.
2. Per rule (the 2d-arena as shipped is `strict`; its ZIP-215 variant is the same
   module with `signatures = "zip215"` in a scratch copy of the manifest): a manager
   on a fresh root starts N worlds through its API. Then `everarcade-runtime load
   --batch --json` against world 0 alone, then N `load` processes at once, one per
   world. Each `load` signs its bots' inputs before it sends (not timed), and the N
   hold them until one `--start-at` time set past the longest preparation (scaled
   from the single run's), so that no driver signs while another sends. Aggregate =
   sum of acknowledged inputs / (last send end - first send start), each from the
   load's own `send_started_unix_millis` and `elapsed_seconds`.
Every world runs its own node (its own process, HTTP threads checking signatures
under the world's rule, its own journal with group commit). Everything on
127.0.0.1; the manager and every world are stopped at the end (also on failure).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import PACKAGE, REPO, call, free_port  # noqa: E402


def floor(profile):
    env = dict(os.environ, EA_BENCH_ONLY="signatures")
    out = subprocess.run(["cargo", "bench", "-p", "everarcade-bench", "--bench", "speed",
                          "--profile", profile], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True).stdout
    rates = {}
    for line in out.splitlines():
        match = re.search(r"^\s*(.+?): ([\d,]+) checks/s", line)
        if match:
            rates[match.group(1)] = int(match.group(2).replace(",", ""))
    strict = rates["strict, one by one, every core (verify_signatures_under)"]
    zip215 = rates["zip215, a batch per core, every core (verify_signatures_under)"]
    return {"strict": strict, "zip215": zip215}, out


def package_for(rule, scratch):
    if rule == "strict":
        return PACKAGE
    copy = os.path.join(scratch, "zip215-arena")
    os.makedirs(copy)
    manifest = open(os.path.join(PACKAGE, "world.toml")).read()
    patched = manifest.replace("tick_rate_hz = 20\n", "tick_rate_hz = 20\nsignatures = \"zip215\"\n", 1)
    assert patched != manifest, "the 2d-arena manifest has no `tick_rate_hz = 20` line"
    open(os.path.join(copy, "world.toml"), "w").write(patched)
    shutil.copy(os.path.join(PACKAGE, "world.wasm"), os.path.join(copy, "world.wasm"))
    return copy


def load_command(args, root, world, package, endpoint, ticks, start_at=None):
    command = [args.binary, "load", root, world, package, "--addr", endpoint,
               "--bots", str(args.bots), "--ticks", str(ticks), "--batch",
               "--duration-secs", str(args.seconds), "--json"] + (["--binary"] if args.encoding == "binary" else [])
    command += ["--concurrency", str(args.concurrency)]
    if start_at is not None:
        command += ["--start-at", str(start_at)]
    return command


def run_loads(commands):
    """Runs the commands at once; returns (reports, aggregate inputs/s, window s)."""
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    reports, windows = [], []
    for i, proc in enumerate(procs):
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"load {commands[i][3]} failed ({proc.returncode}): {err}")
        report = json.loads(out.strip().splitlines()[-1])
        reports.append(report)
        start = report["send_started_unix_millis"] / 1000
        windows.append((start, start + report["elapsed_seconds"]))
    first = min(start for start, _ in windows)
    last = max(end for _, end in windows)
    # The share of the whole window in which every load was sending.
    overlap = max(0.0, min(end for _, end in windows) - max(start for start, _ in windows))
    total = sum(r["acknowledged"] for r in reports)
    return reports, total / (last - first), last - first, overlap


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "debug/everarcade-runtime"))
    parser.add_argument("--worlds", type=int, default=8)
    parser.add_argument("--rule", choices=["zip215", "strict", "both"], default="both")
    parser.add_argument("--bots", type=int, default=4096)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--encoding", choices=["json", "binary"], default="json",
                        help="the envelopes' encoding on the wire (load's --binary)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="lanes per load (load's --concurrency): with 4,096 bots, 4 lanes "
                             "carry about 18 inputs a request, as a game's gateway batches")
    parser.add_argument("--profile", default="dev",
                        help="cargo profile of the floor's bench (match the binary's)")
    args = parser.parse_args()
    rules = ["strict", "zip215"] if args.rule == "both" else [args.rule]
    load_before = os.getloadavg()[0]
    rates, _ = floor(args.profile)
    scratch = tempfile.mkdtemp(prefix="ea-manager-admission-")
    manager = None
    lines = []
    try:
        for rule in rules:
            package = package_for(rule, scratch)
            root = os.path.join(scratch, f"root-{rule}")
            port = free_port()
            log = open(os.path.join(scratch, f"manager-{rule}.log"), "w")
            # Every load comes from 127.0.0.1, one client to each node: its
            # per-client request limit (500/s by default) must not be what is
            # measured, as in the in-process admission bench.
            manager = subprocess.Popen([args.binary, "manager", root, "--http-addr",
                                        f"127.0.0.1:{port}", "--set",
                                        "node_args=--set http.rate_per_client_per_second=1000000"],
                                       stdout=subprocess.DEVNULL, stderr=log)
            for _ in range(600):
                try:
                    if call(port, "GET", "/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            token = open(os.path.join(root, "admin.token")).read().strip()
            endpoints = []
            for i in range(args.worlds):
                status, body = call(port, "POST", f"/api/v1/internal/runtimes/w{i}/start", token,
                                    {"package": package})
                assert status == 200 and body["status"] == "running", body
                endpoints.append(body["engine_endpoint"])
            # Enough prepared inputs for the whole duration at the world's cap
            # (1,024 inputs per tick at 20 Hz): 2d-arena bots act about 1 tick
            # in 22 (60 ticks of 2,048 bots make about 5,400 inputs).
            # `load` prepares at most 2,000,000 bot-ticks.
            single_ticks = max(10, min((20_480 * args.seconds * 22) // args.bots,
                                       2_000_000 // args.bots))
            [one], one_rate, one_window, _ = run_loads(
                [load_command(args, root, "w0", package, endpoints[0], single_ticks)])
            # Each of the N loads prepares as much as the single run, so that
            # none runs out before --duration-secs when the worlds together
            # admit more than one does. They prepare all at once, and the
            # single run's preparation already used every core: N times its
            # time, a quarter again, and a second, for safety.
            preparing = one["prepare_seconds"] * args.worlds * 1.25 + 1.0
            start_at = int((time.time() + preparing) * 1000)
            reports, many_rate, window, overlap = run_loads(
                [load_command(args, root, f"w{i}", package, endpoints[i], single_ticks, start_at)
                 for i in range(args.worlds)])
            late = max(r["send_started_unix_millis"] for r in reports) - start_at
            refused = sum(sum(r["refused"].values()) if isinstance(r["refused"], dict) else 0
                          for r in reports)
            floor_rate = rates[rule]
            lines.append(
                f"{rule}: one world {one_rate:,.0f} inputs/s ({one['acknowledged']:,} of "
                f"{one['prepared']:,} prepared in "
                f"{one_window:.2f} s, p99 {(one['latency_p99_micros'] or 0) / 1000:.1f} ms); "
                f"{args.worlds} worlds {many_rate:,.0f} inputs/s "
                f"({sum(r['acknowledged'] for r in reports):,} of "
                f"{sum(r['prepared'] for r in reports):,} prepared in {window:.2f} s, "
                f"{sum(r['sent'] for r in reports) / max(1, sum(r['requests'] for r in reports)):.1f} "
                f"inputs a request, all sending "
                f"together {overlap:.2f} s, the last started {late} ms after --start-at, "
                f"refused {refused}); floor ({rule} checks on every "
                f"core) {floor_rate:,}/s; {args.worlds} worlds = {many_rate / floor_rate:.2f} of "
                f"the floor (target >= 0.60), one world = {one_rate / floor_rate:.2f}; "
                f"{args.worlds} worlds / one world = {many_rate / one_rate:.2f}")
            for i in range(args.worlds):
                call(port, "POST", f"/api/v1/internal/runtimes/w{i}/stop", token, {})
            manager.send_signal(signal.SIGTERM)
            manager.wait(timeout=60)
            manager = None
        print(f"binary {args.binary}, nproc {os.cpu_count()}, load average before "
              f"{load_before:.2f}, after {os.getloadavg()[0]:.2f}; --bots {args.bots} --batch "
              f"--duration-secs {args.seconds} --concurrency {args.concurrency} "
              f"--encoding {args.encoding}")
        print(f"floor, same run: strict verify on every core {rates['strict']:,}/s; "
              f"zip215 a batch per core {rates['zip215']:,}/s")
        for line in lines:
            print(line)
    finally:
        if manager is not None:
            manager.send_signal(signal.SIGTERM)
            try:
                manager.wait(timeout=30)
            except subprocess.TimeoutExpired:
                manager.kill()
        for entry in os.listdir(scratch):
            worlds = os.path.join(scratch, entry, "worlds")
            for name in os.listdir(worlds) if os.path.isdir(worlds) else []:
                try:
                    pid = int(open(os.path.join(worlds, name, "world.lock")).read().strip() or 0)
                    if pid and os.path.exists(f"/proc/{pid}"):
                        os.kill(pid, signal.SIGTERM)
                except (OSError, ValueError):
                    pass
        time.sleep(1)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
