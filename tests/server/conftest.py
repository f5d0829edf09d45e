"""Fixtures for the end-to-end tests of `jikji serve`.

Each fixture starts the real release binary (`target/release/jikji serve`, or $JIKJI_BIN)
on a free loopback port with a real model, waits for /health, and stops it at the end.
Servers are module- or session-scoped because loading a model takes a few seconds.
"""

import os
import pathlib
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import httpx
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("JIKJI_BIN", str(ROOT / "target" / "release" / "jikji"))
SMOL = "smollm2-135m"
QWEN = "qwen2.5-0.5b"
STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running `jikji serve` process."""

    def __init__(self, model, args=(), env=None, scheme="http", verify=True):
        self.model = model
        self.port = free_port()
        self.scheme = scheme
        # A CA file path becomes an SSL context (httpx no longer takes a path).
        self.verify = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="jikji-serve-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.pop("JIKJI_API_KEYS", None)
        full_env.update(env or {})
        cmd = [BIN, "serve", "-m", model, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=full_env)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jikji serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                r = httpx.get(self.base + "/health", timeout=2, verify=self.verify)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"jikji serve did not become healthy:\n{self.output()}")

    def output(self) -> str:
        return pathlib.Path(self.log.name).read_text(errors="replace")

    def url(self, path: str) -> str:
        return self.base + path

    def client(self, api_key="unused", **kw) -> openai.OpenAI:
        http_client = httpx.Client(verify=self.verify, timeout=300)
        return openai.OpenAI(base_url=self.base + "/v1", api_key=api_key, http_client=http_client, max_retries=0, **kw)

    def metrics(self, headers=None) -> dict:
        """The /metrics page as {series name with labels: value}."""
        r = httpx.get(self.url("/metrics"), headers=headers or {}, verify=self.verify, timeout=10)
        r.raise_for_status()
        out = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


@pytest.fixture(scope="session")
def smol():
    """smollm2-135m, no keys, 1024-token context."""
    s = Server(SMOL, ["--ctx", "1024", "--parallel", "32"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def qwen():
    """qwen2.5-0.5b, no keys."""
    s = Server(QWEN, ["--ctx", "1024", "--parallel", "4"])
    yield s
    s.stop()
