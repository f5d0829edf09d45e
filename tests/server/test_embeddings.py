"""`POST /v1/embeddings` end to end: a real `jikji serve` holding a chat model
(qwen2.5-0.5b) and an encoder (nomic-embed-text-v1.5), the official openai client.

Pins: every input shape of OpenAI's API, base64 = float, `dimensions` (Matryoshka),
vectors equal to `jikji embed` for the same text, hostile inputs as 400s after which the
server still serves, kind mismatches as 400s, and chat plus embeddings at once.
"""

import base64
import json
import math
import pathlib
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from conftest import BIN, QWEN, Server

EMB = "nomic-embed-text-v1.5"
TEXTS = ["search_query: 직지는 언제 인쇄되었나요?", "search_document: The oldest extant book printed with movable metal type."]


@pytest.fixture(scope="module")
def both():
    s = Server(QWEN, ["-m", EMB,
                      "--ctx", "512", "--parallel", "4"])
    yield s
    s.stop()


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def cli_embed(*texts, extra=()):
    out = subprocess.run([BIN, "embed", "-m", EMB, "--json", *extra, "--", *texts],
                         check=True, capture_output=True, text=True).stdout
    return [d["embedding"] for d in json.loads(out)["data"]]


def cli_tokens(text):
    out = subprocess.run([BIN, "embed", "-m", EMB, "--tokens", "--", text],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])


def post(s, body):
    return httpx.post(s.url("/v1/embeddings"), json=body, timeout=120)


def assert_400(r, param="input"):
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["message"]
    assert err["param"] == param, err


def test_models_lists_the_chat_and_the_embedding_model(both):
    assert [m.id for m in both.client().models.list().data] == [QWEN, EMB]


def test_string_input_equals_jikji_embed(both):
    r = both.client().embeddings.create(model=EMB, input=TEXTS[0])
    assert r.model == EMB and r.object == "list"
    (d,) = r.data
    assert d.index == 0 and len(d.embedding) == 768
    (ref,) = cli_embed(TEXTS[0])
    assert cosine(d.embedding, ref) >= 0.9999
    assert max(abs(a - b) for a, b in zip(d.embedding, ref)) <= 1e-3
    assert r.usage.prompt_tokens == len(cli_tokens(TEXTS[0])) == r.usage.total_tokens


def test_list_of_strings_keeps_order_and_matches_one_by_one(both):
    c = both.client()
    r = c.embeddings.create(model=EMB, input=TEXTS)
    assert [d.index for d in r.data] == [0, 1]
    for i, t in enumerate(TEXTS):
        alone = c.embeddings.create(model=EMB, input=t).data[0].embedding
        assert cosine(r.data[i].embedding, alone) >= 0.9999
    assert cosine(r.data[0].embedding, r.data[1].embedding) < 0.99


def test_token_ids_embed_as_their_text(both):
    c = both.client()
    ids = [cli_tokens(t) for t in TEXTS]
    text = c.embeddings.create(model=EMB, input=TEXTS).data
    one = c.embeddings.create(model=EMB, input=ids[0]).data
    many = c.embeddings.create(model=EMB, input=ids).data
    assert len(one) == 1 and len(many) == 2
    assert cosine(one[0].embedding, text[0].embedding) >= 0.9999
    for a, b in zip(many, text):
        assert cosine(a.embedding, b.embedding) >= 0.9999


def test_base64_is_the_float_vector_as_little_endian_f32(both):
    floats = post(both, {"model": EMB, "input": TEXTS[1]}).json()["data"][0]["embedding"]
    b64 = post(both, {"model": EMB, "input": TEXTS[1], "encoding_format": "base64"}).json()["data"][0]["embedding"]
    raw = base64.b64decode(b64)
    assert len(raw) == 4 * 768
    assert list(struct.unpack(f"<{768}f", raw)) == pytest.approx(floats, abs=1e-7)
    # Left to itself the openai client asks for base64 and decodes it: the same vector.
    client_vec = both.client().embeddings.create(model=EMB, input=TEXTS[1])
    assert cosine(floats, client_vec.data[0].embedding) >= 0.9999
    # Asked for base64 explicitly, it hands the string through untouched.
    explicit = both.client().embeddings.create(model=EMB, input=TEXTS[1], encoding_format="base64")
    assert explicit.data[0].embedding == b64


def test_dimensions_truncate_and_renormalise_like_jikji_embed(both):
    r = both.client().embeddings.create(model=EMB, input=TEXTS[0], dimensions=256)
    v = r.data[0].embedding
    assert len(v) == 256
    assert math.sqrt(sum(x * x for x in v)) == pytest.approx(1.0, abs=1e-5)
    (ref,) = cli_embed(TEXTS[0], extra=("--dimensions", "256"))
    assert cosine(v, ref) >= 0.9999
    assert_400(post(both, {"model": EMB, "input": "x", "dimensions": 769}), "dimensions")
    assert_400(post(both, {"model": EMB, "input": "x", "dimensions": 0}), "dimensions")


def test_over_long_input_is_400_unless_truncation_is_asked(both):
    long_text = "metal type " * 3000
    r = post(both, {"model": EMB, "input": long_text})
    assert_400(r)
    assert r.json()["error"]["code"] == "context_length_exceeded"
    r = post(both, {"model": EMB, "input": long_text, "truncate_prompt_tokens": 64})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == 64
    r = post(both, {"model": EMB, "input": long_text, "truncate_prompt_tokens": -1})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] == 2048


def test_hostile_inputs_are_clear_400s_and_the_server_keeps_serving(both):
    cases = [
        {"model": EMB, "input": ["x"] * 100_000},
        {"model": EMB, "input": ""},
        {"model": EMB, "input": ["ok", ""]},
        {"model": EMB, "input": []},
        {"model": EMB, "input": [[]]},
        {"model": EMB, "input": [101, 99_999_999]},
        {"model": EMB, "input": [[101, -5]]},
        {"model": EMB, "input": 42},
        {"model": EMB, "input": [{"text": "x"}]},
        {"model": EMB, "input": ["x", 5]},
        {"model": EMB},
    ]
    for body in cases:
        assert_400(post(both, body))
    assert_400(post(both, {"model": EMB, "input": "x", "encoding_format": "int8"}), "encoding_format")
    assert_400(post(both, {"model": EMB, "input": "x", "truncate_prompt_tokens": 0}), "truncate_prompt_tokens")
    r = httpx.post(both.url("/v1/embeddings"), content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    # Still serving, both kinds.
    assert len(both.client().embeddings.create(model=EMB, input="still here").data) == 1
    assert both.client().completions.create(model=QWEN, prompt="Hi", max_tokens=2).choices[0].text is not None


def test_kind_mismatch_is_a_400_naming_the_model(both):
    c = both.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model=QWEN, input="x")
    assert e.value.body["code"] == "model_not_supported" and QWEN in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=EMB, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert e.value.body["code"] == "model_not_supported" and EMB in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        c.embeddings.create(model="no-such-model", input="x")
    # Without `model`, embeddings go to the first embedding model.
    r = post(both, {"input": "x"})
    assert r.status_code == 200 and r.json()["model"] == EMB


def test_chat_and_embeddings_at_once_all_succeed(both):
    c = both.client()
    ref = c.embeddings.create(model=EMB, input=TEXTS).data

    def chat(_):
        r = c.chat.completions.create(model=QWEN, messages=[{"role": "user", "content": "Say hi."}],
                                      max_tokens=8, temperature=0)
        return r.choices[0].message.content

    def emb(_):
        return c.embeddings.create(model=EMB, input=TEXTS).data

    with ThreadPoolExecutor(12) as ex:
        chats = [ex.submit(chat, i) for i in range(4)]
        embs = [ex.submit(emb, i) for i in range(8)]
        for f in chats:
            assert f.result()
        for f in embs:
            got = f.result()
            # Batched with other requests, each vector is still its own text's.
            for a, b in zip(got, ref):
                assert cosine(a.embedding, b.embedding) >= 0.9999


def test_retrieval_example_ranks_the_jikji_paragraph_first(both):
    """examples/retrieval.py (README) against the two models: the paragraph about Jikji
    (index 0) answers the default question best, and the chat model answers."""
    out = subprocess.run(["python3", str(pathlib.Path(__file__).resolve().parents[2] / "examples" / "retrieval.py"),
                          "--base-url", both.url("/v1"), "--json"],
                         check=True, capture_output=True, text=True, timeout=300).stdout
    doc = json.loads(out)
    assert doc["ranked"][0]["index"] == 0
    assert doc["ranked"][0]["score"] > doc["ranked"][1]["score"]
    assert doc["answer"].strip()
