"""API keys, TLS and the default bind address of `jikji serve`."""

import datetime
import ipaddress
import pathlib
import tempfile

import httpx
import openai
import pytest

from conftest import SMOL, Server

MSG = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def keyed():
    """Keys from a file (one per line, with a comment) and from JIKJI_API_KEYS."""
    d = tempfile.mkdtemp(prefix="jikji-keys-")
    f = pathlib.Path(d) / "keys.txt"
    f.write_text("# staff\nsk-file-key\n\n")
    s = Server(SMOL, ["--ctx", "512", "--parallel", "2", "--api-key-file", str(f)], env={"JIKJI_API_KEYS": "sk-env-1,sk-env-2"})
    yield s
    s.stop()


def test_missing_key_is_401(keyed):
    r = httpx.post(keyed.url("/v1/chat/completions"), json={"model": SMOL, "messages": MSG, "max_tokens": 1})
    assert r.status_code == 401
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_wrong_key_is_401(keyed):
    with pytest.raises(openai.AuthenticationError) as e:
        keyed.client(api_key="sk-file-kez").chat.completions.create(model=SMOL, messages=MSG, max_tokens=1)
    assert e.value.status_code == 401


@pytest.mark.parametrize("key", ["sk-file-key", "sk-env-1", "sk-env-2"])
def test_keys_from_file_and_environment_are_accepted(keyed, key):
    r = keyed.client(api_key=key).chat.completions.create(model=SMOL, messages=MSG, max_tokens=2, temperature=0)
    assert r.choices[0].message.content is not None


def test_x_api_key_header_is_accepted(keyed):
    r = httpx.post(
        keyed.url("/v1/completions"),
        json={"model": SMOL, "prompt": "Hi", "max_tokens": 1},
        headers={"x-api-key": "sk-env-1"},
        timeout=60,
    )
    assert r.status_code == 200, r.text


def test_every_route_but_health_needs_the_key(keyed):
    assert httpx.get(keyed.url("/health")).status_code == 200
    for method, path in [("GET", "/v1/models"), ("GET", "/metrics"), ("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/v1/unknown")]:
        r = httpx.request(method, keyed.url(path), json={})
        assert r.status_code == 401, (method, path, r.status_code)
    r = httpx.get(keyed.url("/metrics"), headers={"authorization": "Bearer sk-file-key"})
    assert r.status_code == 200
    assert 'jikji_requests_total{status="401"}' in r.text


def test_server_binds_loopback_by_default(keyed):
    assert "127.0.0.1" in keyed.output()


def make_cert(dirpath: pathlib.Path):
    """A self-signed certificate for 127.0.0.1/localhost (cryptography package)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = dirpath / "cert.pem"
    key_path = dirpath / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_serves_https_with_the_given_certificate():
    d = pathlib.Path(tempfile.mkdtemp(prefix="jikji-tls-"))
    cert, key = make_cert(d)
    s = Server(SMOL, ["--ctx", "512", "--parallel", "2", "--tls-cert", str(cert), "--tls-key", str(key)], scheme="https", verify=str(cert))
    try:
        r = s.client().chat.completions.create(model=SMOL, messages=MSG, max_tokens=3, temperature=0)
        assert r.choices[0].message.content is not None
        chunks = list(s.client().completions.create(model=SMOL, prompt="Hi", max_tokens=3, temperature=0, stream=True))
        assert chunks[-1].choices[0].finish_reason in ("stop", "length")
        # Plain HTTP to the TLS port does not get an answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{s.port}/health", timeout=5)
        # An unverified client refuses the self-signed certificate.
        with pytest.raises(httpx.ConnectError):
            httpx.get(s.url("/health"), timeout=5)
    finally:
        s.stop()


def test_bad_tls_files_fail_at_startup():
    d = pathlib.Path(tempfile.mkdtemp(prefix="jikji-tls-"))
    bad = d / "cert.pem"
    bad.write_text("not a certificate")
    with pytest.raises(RuntimeError) as e:
        Server(SMOL, ["--tls-cert", str(bad), "--tls-key", str(bad)])
    assert "TLS" in str(e.value) or "tls" in str(e.value)
