"""Replicas behind a real load balancer, on one machine: three `jikji serve` processes behind
HAProxy (Debian's package) with health checks on /ready, a closed-loop load through it,
one replica SIGKILLed and another SIGTERMed mid-load.

This is what a Kubernetes Service / Gateway does with the chart's readiness probe, minus
the cluster: the balancer takes a replica out when /ready fails or its port is gone, and
a replica that is draining (SIGTERM, as on a pod's termination) answers /ready 503 while
it finishes what it has."""

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import httpx
import pytest

from conftest import SMOL, Server, free_port

INTER_MS, FALL = 500, 2

if shutil.which("haproxy") is None:
    if os.environ.get("CI"):
        raise RuntimeError("haproxy is not installed (.ci/run installs Debian's haproxy)")
    pytest.skip("haproxy is not installed (apt-get install haproxy)", allow_module_level=True)


def haproxy_config(port, stats_port, replicas):
    servers = "\n".join(f"    server r{i} 127.0.0.1:{s.port} check" for i, s in enumerate(replicas))
    return f"""
global
    maxconn 512
defaults
    mode http
    timeout connect 1s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
    option http-buffer-request
frontend api
    bind 127.0.0.1:{port}
    default_backend jikji
backend jikji
    balance leastconn
    option httpchk GET /ready
    http-check expect status 200
    default-server inter {INTER_MS}ms fall {FALL} rise 2
    http-response set-header x-jikji-replica %s
{servers}
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


def stats(stats_port):
    """{server name: (status, lbtot)} from HAProxy's CSV stats."""
    text = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=5).text
    lines = text.lstrip("# ").splitlines()
    head = lines[0].split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(head, line.split(",")))
        if row.get("pxname") == "jikji" and row.get("svname", "").startswith("r"):
            out[row["svname"]] = (row["status"], int(row["lbtot"] or 0))
    return out


def wait_until(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return time.monotonic()
        time.sleep(0.05)
    return None


def test_killed_and_drained_replicas_lose_no_request_to_a_survivor():
    replicas = [Server(SMOL, ["--ctx", "256", "--parallel", "4", "-t", "1", "--no-ui", "--shutdown-timeout", "60"]) for _ in range(3)]
    d = pathlib.Path(tempfile.mkdtemp(prefix="jikji-haproxy-"))
    port, stats_port = free_port(), free_port()
    (d / "haproxy.cfg").write_text(haproxy_config(port, stats_port, replicas))
    lb = subprocess.Popen(["haproxy", "-db", "-f", str(d / "haproxy.cfg")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    results, stop = [], threading.Event()
    lock = threading.Lock()

    def client():
        with httpx.Client(timeout=120) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    r = c.post(f"http://127.0.0.1:{port}/v1/completions",
                               json={"model": SMOL, "prompt": "The capital of France is", "max_tokens": 12, "temperature": 0})
                    rec = (t0, time.monotonic(), r.status_code, r.headers.get("x-jikji-replica"), r.text[:200])
                except httpx.HTTPError as e:
                    rec = (t0, time.monotonic(), None, None, repr(e))
                with lock:
                    results.append(rec)

    try:
        def all_up():
            try:
                st = stats(stats_port)
            except httpx.HTTPError:
                assert lb.poll() is None, lb.stderr.read().decode(errors="replace")
                return False
            return len(st) == 3 and all(v[0] == "UP" for v in st.values())

        assert wait_until(all_up, 30), stats(stats_port)
        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(4)

        # SIGKILL r0: the balancer must mark it DOWN within its check interval × fall.
        t_kill = time.monotonic()
        replicas[0].proc.kill()
        t_down = wait_until(lambda: stats(stats_port)["r0"][0].startswith("DOWN"), 10)
        assert t_down is not None, stats(stats_port)
        detect = t_down - t_kill
        assert detect <= (INTER_MS * FALL + INTER_MS) / 1000 + 0.5, f"took {detect:.2f} s to take the dead replica out"
        sent_to_dead = stats(stats_port)["r0"][1]
        time.sleep(3)

        # SIGTERM r1: it drains (503 on /ready, in-flight requests finish) and exits 0.
        t_term = time.monotonic()
        replicas[1].signal(signal.SIGTERM)
        assert replicas[1].proc.wait(timeout=90) == 0, replicas[1].output()
        t_exit = time.monotonic()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(180)

        assert stats(stats_port)["r0"][1] == sent_to_dead, "the balancer sent to the dead replica after taking it out"
        assert "shut down after finishing all requests" in replicas[1].output()
        failed = [r for r in results if r[2] != 200]
        # A failure may only be a request that was in flight on the killed replica.
        for f in failed:
            assert f[0] < t_kill <= f[1], f"a request failed that was not in flight at the kill: {f}"
        in_flight_at_term = [r for r in results if r[3] == "r1" and r[0] < t_term < r[1]]
        assert in_flight_at_term, "no request was running on the drained replica at SIGTERM"
        assert all(r[2] == 200 for r in in_flight_at_term)
        after = [r for r in results if r[0] > t_exit]
        assert after and all(r[2] == 200 and r[3] == "r2" for r in after), after[:3]
        assert len([r for r in results if r[2] == 200]) >= 20, len(results)
    finally:
        stop.set()
        lb.terminate()
        lb.wait(10)
        for s in replicas:
            s.stop()
