"""One jikji for a whole institution: keys made by `jikji keys add`, their scopes on every
route, their limits (429 + Retry-After for that key only), reloads that keep the counts,
the audit log, the probes, and bodies over the limit answered 413 to curl."""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import threading
import time

import httpx
import pytest

from conftest import BIN, SMOL, Server

SECRET_PROMPT = "zebra-violet-secret-prompt"


def keys_add(file, name, *args):
    """Runs `jikji keys add`; returns (key, whole output)."""
    out = subprocess.run([BIN, "keys", "add", name, "--file", str(file), *args], check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[-1], out


def auth(key):
    return {"authorization": f"Bearer {key}"}


def wait_for(cond, timeout=15):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def inst():
    d = pathlib.Path(tempfile.mkdtemp(prefix="jikji-inst-"))
    kf = d / "keys.toml"
    keys = {}
    keys["free"], _ = keys_add(kf, "team-free")
    keys["rpm"], _ = keys_add(kf, "team-rpm", "--requests-per-minute", "3")
    keys["tpm"], _ = keys_add(kf, "team-tpm", "--tokens-per-minute", "40")
    keys["conc"], _ = keys_add(kf, "team-conc", "--max-concurrent", "1")
    keys["ops"], _ = keys_add(kf, "ops", "--scope", "metrics")
    keys["admin"], _ = keys_add(kf, "root", "--scope", "admin")
    audit = d / "audit.jsonl"
    s = Server(SMOL, ["--ctx", "512", "--parallel", "4", "--keys-file", str(kf), "--audit-log", str(audit)],
               env={"JIKJI_API_KEYS": "sk-plain-env-key"})
    s.keys, s.keys_file, s.audit = keys, kf, audit
    yield s
    s.stop()


def test_keys_add_prints_the_key_last_and_stores_only_its_digest(tmp_path):
    kf = tmp_path / "k.toml"
    key, out = keys_add(kf, "lab", "--scope", "inference", "--scope", "embeddings", "--tokens-per-day", "1000")
    assert key.startswith("sk-jikji-") and out.count(key) == 1
    text = kf.read_text()
    assert key not in text
    assert hashlib.sha256(key.encode()).hexdigest() in text
    assert 'scopes = ["inference", "embeddings"]' in text and "tokens_per_day = 1000" in text
    listed = subprocess.run([BIN, "keys", "list", "--file", str(kf)], check=True, capture_output=True, text=True).stdout
    assert "lab" in listed and key not in listed and "tpd=1000" in listed
    dup = subprocess.run([BIN, "keys", "add", "lab", "--file", str(kf)], capture_output=True, text=True)
    assert dup.returncode != 0 and "already has a key named `lab`" in dup.stderr
    subprocess.run([BIN, "keys", "remove", "lab", "--file", str(kf)], check=True, capture_output=True)
    assert "lab" not in subprocess.run([BIN, "keys", "list", "--file", str(kf)], capture_output=True, text=True).stdout


def test_a_key_made_by_keys_add_works_with_the_openai_client(inst):
    r = inst.client(api_key=inst.keys["free"]).chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": SECRET_PROMPT}], max_tokens=4, temperature=0)
    assert r.usage.completion_tokens >= 1


def test_scopes_are_enforced_on_every_route(inst):
    k = inst.keys
    routes = [("POST", "/v1/chat/completions", {"model": SMOL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}),
              ("POST", "/v1/completions", {"model": SMOL, "prompt": "Hi", "max_tokens": 1}),
              ("POST", "/completions", {"model": SMOL, "prompt": "Hi", "max_tokens": 1}),
              ("GET", "/v1/models", None), ("GET", f"/v1/models/{SMOL}", None), ("GET", "/props", None),
              ("POST", "/tokenize", {"content": "Hi"}), ("POST", "/detokenize", {"tokens": [1]})]
    for method, path, body in routes:
        only_metrics = httpx.request(method, inst.url(path), json=body, headers=auth(k["ops"]), timeout=60)
        assert only_metrics.status_code == 403, (path, only_metrics.text)
        assert only_metrics.json()["error"]["code"] == "insufficient_scope"
        assert httpx.request(method, inst.url(path), json=body, timeout=60).status_code == 401, path
        for who in ("free", "admin"):
            assert httpx.request(method, inst.url(path), json=body, headers=auth(k[who]), timeout=60).status_code == 200, (who, path)
    # /metrics: refused without the metrics scope, open to it and to admin.
    assert httpx.get(inst.url("/metrics")).status_code == 401
    assert httpx.get(inst.url("/metrics"), headers=auth(k["free"])).status_code == 403
    m = inst.metrics(headers=auth(k["ops"]))
    assert httpx.get(inst.url("/metrics"), headers=auth(k["admin"])).status_code == 200
    assert m['jikji_key_requests_total{key="team-free"}'] >= 1
    for gauge in ("jikji_queue_depth", "jikji_running_sequences", "jikji_kv_cache_usage_ratio"):
        assert gauge in m
    # The plain JIKJI_API_KEYS key keeps working, for inference and metrics.
    assert httpx.post(inst.url("/tokenize"), json={"content": "x"}, headers=auth("sk-plain-env-key")).status_code == 200
    assert httpx.get(inst.url("/metrics"), headers=auth("sk-plain-env-key")).status_code == 200
    # Probes need no key.
    assert httpx.get(inst.url("/health")).json() == {"status": "ok"}
    assert httpx.get(inst.url("/ready")).json() == {"status": "ready"}


def assert_rate_limited(r, limit):
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert limit in err["message"]


def test_requests_per_minute_gives_429_for_that_key_only_and_a_reload_keeps_the_count(inst):
    k = inst.keys
    for _ in range(3):
        assert httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["rpm"])).status_code == 200
    assert_rate_limited(httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["rpm"])), "RPM")
    # Another key is not affected.
    assert httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["free"])).status_code == 200
    # A file change (a new key added) reloads the file; the new key works and the old
    # key's count survived.
    new_key, _ = keys_add(inst.keys_file, "late-team")
    assert wait_for(lambda: httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(new_key)).status_code == 200)
    assert_rate_limited(httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["rpm"])), "RPM")
    # SIGHUP reloads too: a removed key is refused, the counts stay.
    subprocess.run([BIN, "keys", "remove", "late-team", "--file", str(inst.keys_file)], check=True, capture_output=True)
    inst.signal(signal.SIGHUP)
    assert wait_for(lambda: httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(new_key)).status_code == 401, 5)
    assert_rate_limited(httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["rpm"])), "RPM")
    m = inst.metrics(headers=auth(k["ops"]))
    assert m['jikji_key_rate_limited_total{key="team-rpm",limit="requests_per_minute"}'] >= 3
    assert m['jikji_keys_reloads_total{result="ok"}'] >= 2


def test_tokens_per_minute_counts_generated_tokens(inst):
    k = inst.keys
    body = {"model": SMOL, "prompt": "Count: 1, 2, 3,", "max_tokens": 48, "temperature": 0, "ignore_eos": True}
    r = httpx.post(inst.url("/v1/completions"), json=body, headers=auth(k["tpm"]), timeout=120)
    assert r.status_code == 200, r.text
    assert_rate_limited(httpx.post(inst.url("/v1/completions"), json=body, headers=auth(k["tpm"]), timeout=120), "TPM")
    assert httpx.post(inst.url("/v1/completions"), json={**body, "max_tokens": 2}, headers=auth(k["free"]), timeout=120).status_code == 200
    m = inst.metrics(headers=auth(k["ops"]))
    assert m['jikji_key_completion_tokens_total{key="team-tpm"}'] == 48


def test_max_concurrent_holds_the_slot_while_a_stream_runs(inst):
    k = inst.keys
    started, done = threading.Event(), threading.Event()

    def stream():
        body = {"model": SMOL, "prompt": "Once upon a time", "max_tokens": 200, "stream": True, "ignore_eos": True}
        with httpx.stream("POST", inst.url("/v1/completions"), json=body, headers=auth(k["conc"]), timeout=300) as r:
            for _ in r.iter_lines():
                started.set()
        done.set()

    t = threading.Thread(target=stream)
    t.start()
    assert started.wait(120)
    if not done.is_set():
        assert_rate_limited(httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["conc"])), "concurrent")
        assert httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["free"])).status_code == 200
    t.join(300)
    assert wait_for(lambda: httpx.post(inst.url("/tokenize"), json={"content": "a"}, headers=auth(k["conc"])).status_code == 200, 10)


def test_audit_log_has_a_line_per_request_with_names_and_no_secrets(inst):
    k = inst.keys
    marker = "/v1/models/audit-marker"
    for _ in range(5):
        httpx.get(inst.url(marker), headers=auth(k["free"]))
    assert wait_for(lambda: inst.audit.read_text().count(marker) == 5, 5)
    text = inst.audit.read_text()
    for key in list(k.values()) + ["sk-plain-env-key"]:
        assert key not in text
    assert SECRET_PROMPT not in text
    lines = [json.loads(line) for line in text.splitlines()]
    fields = ["time", "key", "client", "method", "route", "model", "prompt_tokens", "completion_tokens", "status", "duration_ms", "cancelled"]
    for rec in lines:
        assert all(f in rec for f in fields), rec
        assert "prompt" not in rec and "output" not in rec
    gen = [r for r in lines if r["route"] == "/v1/chat/completions" and r["key"] == "team-free" and r["status"] == 200]
    assert gen and gen[0]["model"] == SMOL and gen[0]["prompt_tokens"] > 0 and gen[0]["completion_tokens"] >= 1
    assert gen[0]["client"].startswith("127.0.0.1:") and gen[0]["time"].endswith("Z")
    limited = [r for r in lines if r["status"] == 429 and r["key"] == "team-rpm"]
    assert limited and all(r["limit"] == "requests_per_minute" for r in limited)
    assert any(r["status"] == 403 and r["key"] == "ops" for r in lines)
    assert any(r["status"] == 401 and r["key"] is None for r in lines)
    markers = [r for r in lines if r["route"] == marker]
    assert len(markers) == 5 and all(r["key"] == "team-free" and r["status"] == 404 for r in markers)


def test_a_cancelled_stream_is_logged_as_cancelled(inst):
    body = {"model": SMOL, "prompt": "Tell a long story", "max_tokens": 300, "stream": True, "ignore_eos": True}
    with httpx.stream("POST", inst.url("/v1/completions"), json=body, headers=auth(inst.keys["admin"]), timeout=120) as r:
        for _ in zip(range(3), r.iter_lines()):
            pass
    def logged():
        recs = [json.loads(l) for l in inst.audit.read_text().splitlines()]
        return [x for x in recs if x["key"] == "root" and x["route"] == "/v1/completions" and x["cancelled"]]
    assert wait_for(lambda: logged(), 10)
    rec = logged()[0]
    assert rec["status"] == 200 and 0 < rec["completion_tokens"] < 300


def test_curl_sending_33_mb_gets_413(inst, tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.write(b'{"model": "x", "prompt": "')
        f.write(b"a" * (33 * 1024 * 1024))
        f.write(b'"}')
    out = subprocess.run(["curl", "-sS", "-o", str(tmp_path / "body"), "-w", "%{http_code}", "-X", "POST",
                          "-H", "content-type: application/json", "-H", f"authorization: Bearer {inst.keys['free']}",
                          "--data-binary", f"@{big}", inst.url("/v1/completions")], capture_output=True, text=True, timeout=120)
    assert out.stdout == "413", (out.stdout, out.stderr)
    assert json.loads((tmp_path / "body").read_text())["error"]["code"] == "request_too_large"


def test_audit_content_writes_prompts_only_when_asked(tmp_path):
    log = tmp_path / "a.jsonl"
    s = Server(SMOL, ["--ctx", "256", "--parallel", "1", "--audit-log", str(log), "--audit-content"])
    try:
        r = httpx.post(s.url("/v1/completions"), json={"model": SMOL, "prompt": SECRET_PROMPT, "max_tokens": 3, "temperature": 0}, timeout=60)
        assert r.status_code == 200
        text = r.json()["choices"][0]["text"]
        assert wait_for(lambda: SECRET_PROMPT in log.read_text(), 5)
        rec = [json.loads(l) for l in log.read_text().splitlines() if SECRET_PROMPT in l][0]
        assert rec["prompt"] == SECRET_PROMPT and rec["output"] == [text] and rec["key"] is None
    finally:
        s.stop()
