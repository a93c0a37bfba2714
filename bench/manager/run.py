#!/usr/bin/env python3
"""The runtime manager's figures, each beside its floor measured in the same run.

    python3 bench/manager/run.py [--binary PATH] [--worlds N]

1. Start N 2d-arena worlds through the manager (sequential POST .../start,
   each answered once /readyz is green) against the floor: the same N worlds
   started by a shell loop of `everarcade-runtime start` (which also waits
   for /readyz). Ratio = manager total / loop total (target <= 1.2).
2. Resident memory per idle world (VmRSS of each node, averaged) and the
   manager's own CPU share while the N worlds idle for 10 s (utime+stime from
   /proc, target < 2% of a core).
3. Lifecycle latency: stop -> stopped and start -> running through the API
   for each world, p50/p99, against the CLI's `start` per world as the floor.

Everything runs on 127.0.0.1; every world is stopped and the manager ended at
the end (also on failure).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(REPO, "runtime/games/2d-arena")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, token=None, body=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def percentile(values, p):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "debug/everarcade-runtime"))
    parser.add_argument("--worlds", type=int, default=int(os.environ.get("EA_MANAGER_BENCH_WORLDS", "20")))
    args = parser.parse_args()
    n = args.worlds
    scratch = tempfile.mkdtemp(prefix="ea-manager-bench-")
    loop_root = os.path.join(scratch, "loop")
    managed_root = os.path.join(scratch, "managed")
    manager = None
    try:
        # 1a. The floor: a shell loop of `start`.
        loop_times = []
        started = time.monotonic()
        for i in range(n):
            t = time.monotonic()
            subprocess.run([args.binary, "start", loop_root, f"w{i:03}", PACKAGE,
                            "--http-addr", f"127.0.0.1:{free_port()}"],
                           check=True, stdout=subprocess.DEVNULL)
            loop_times.append(time.monotonic() - t)
        loop_total = time.monotonic() - started
        for i in range(n):
            subprocess.run([args.binary, "stop", loop_root, f"w{i:03}"], check=True,
                           stdout=subprocess.DEVNULL)

        # 1b. The manager.
        port = free_port()
        log = open(os.path.join(scratch, "manager.log"), "w")
        manager = subprocess.Popen([args.binary, "manager", managed_root,
                                    "--http-addr", f"127.0.0.1:{port}"],
                                   stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(600):
            try:
                if call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        token = open(os.path.join(managed_root, "admin.token")).read().strip()
        start_times = []
        started = time.monotonic()
        for i in range(n):
            t = time.monotonic()
            status, body = call(port, "POST", f"/api/v1/internal/runtimes/w{i:03}/start", token,
                                {"package": PACKAGE})
            assert status == 200 and body["status"] == "running", body
            start_times.append(time.monotonic() - t)
        managed_total = time.monotonic() - started

        # 2. Idle: resident memory per world, the manager's CPU share.
        _, listing = call(port, "GET", "/api/v1/internal/runtimes")
        pids = [r["pid"] for r in listing["runtimes"]]
        time.sleep(2)
        rss = [rss_kib(pid) for pid in pids]
        cpu_before = cpu_seconds(manager.pid)
        time.sleep(10)
        cpu_share = (cpu_seconds(manager.pid) - cpu_before) / 10
        manager_rss = rss_kib(manager.pid)

        # 3. Lifecycle latency.
        stops, starts = [], []
        for i in range(n):
            t = time.monotonic()
            status, body = call(port, "POST", f"/api/v1/internal/runtimes/w{i:03}/stop", token, {})
            assert status == 200 and body["status"] == "stopped", body
            stops.append(time.monotonic() - t)
            t = time.monotonic()
            status, body = call(port, "POST", f"/api/v1/internal/runtimes/w{i:03}/start", token, {})
            assert status == 200 and body["status"] == "running", body
            starts.append(time.monotonic() - t)

        ms = lambda s: f"{s * 1000:.0f} ms"
        print(f"worlds: {n} (2d-arena), binary {args.binary}, nproc {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"start {n} worlds: manager {managed_total:.2f} s, shell loop of `start` "
              f"{loop_total:.2f} s (floor); ratio {managed_total / loop_total:.2f} (target <= 1.2)")
        print(f"resident memory per idle world: mean {statistics.mean(rss) / 1024:.1f} MiB, "
              f"max {max(rss) / 1024:.1f} MiB (target <= 40 MB); manager itself "
              f"{manager_rss / 1024:.1f} MiB")
        print(f"manager CPU while {n} worlds idle (10 s): {cpu_share * 100:.2f}% of a core "
              f"(target < 2%)")
        print(f"start -> running: p50 {ms(percentile(starts, 50))}, p99 {ms(percentile(starts, 99))}; "
              f"floor: CLI `start` p50 {ms(percentile(loop_times, 50))}, p99 "
              f"{ms(percentile(loop_times, 99))}; ratio p50 "
              f"{percentile(starts, 50) / percentile(loop_times, 50):.2f}")
        print(f"stop -> stopped: p50 {ms(percentile(stops, 50))}, p99 {ms(percentile(stops, 99))}")
        for i in range(n):
            call(port, "POST", f"/api/v1/internal/runtimes/w{i:03}/stop", token, {})
    finally:
        if manager is not None:
            manager.send_signal(signal.SIGTERM)
            try:
                manager.wait(timeout=30)
            except subprocess.TimeoutExpired:
                manager.kill()
        for root in (loop_root, managed_root):
            worlds = os.path.join(root, "worlds")
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
