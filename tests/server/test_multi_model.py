"""Several models in one `jikji serve`: `-m A -m B` with `--model-alias` per model (paired
by position), routed by the request's `model`, each with its own engine and context."""

import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from conftest import BIN, QWEN, SMOL, Server

SMALL, BIG = "small", "qwen"
MSG = [{"role": "user", "content": "Name one colour. Answer in one word."}]


@pytest.fixture(scope="module")
def pair():
    """smollm2 as `small` (ctx 1024) and qwen2.5-0.5b as `qwen` (ctx 512)."""
    s = Server(SMOL, ["-m", QWEN, "--model-alias", SMALL, "--model-alias", BIG,
                      "--ctx", "1024", "--ctx", "512", "--parallel", "4"])
    yield s
    s.stop()


def test_models_lists_every_served_model_under_its_alias(pair):
    ids = [m.id for m in pair.client().models.list().data]
    assert ids == [SMALL, BIG]
    assert pair.client().models.retrieve(BIG).id == BIG
    # The catalog name stays accepted and resolves to the aliased model.
    assert pair.client().models.retrieve(QWEN).id == BIG


def test_concurrent_requests_to_both_models_each_answer_with_their_own_name(pair):
    c = pair.client()

    def chat(model):
        r = c.chat.completions.create(model=model, messages=MSG, max_tokens=8, temperature=0)
        return model, r.model, r.choices[0].message.content, r.usage.prompt_tokens

    def complete(model):
        r = c.completions.create(model=model, prompt="The sky is", max_tokens=6, temperature=0)
        return model, r.model, r.choices[0].text, r.usage.prompt_tokens

    jobs = [(chat, SMALL), (chat, BIG), (complete, SMALL), (complete, BIG)] * 2
    with ThreadPoolExecutor(len(jobs)) as ex:
        results = list(ex.map(lambda j: j[0](j[1]), jobs))
    for asked, answered, text, _ in results:
        assert answered == asked
        assert text
    # The two models tokenize the same chat differently (their own templates ran).
    chat_prompt = {asked: n for (f, _), (asked, _, _, n) in zip(jobs, results) if f is chat}
    assert chat_prompt[SMALL] != chat_prompt[BIG]


def test_each_model_answers_as_it_does_alone(pair, smol):
    """Routing reaches the named model: `small` answers exactly as smollm2 served alone."""
    kw = dict(prompt="Once upon a time", max_tokens=12, temperature=0)
    alone = smol.client().completions.create(model=SMOL, **kw).choices[0].text
    assert pair.client().completions.create(model=SMALL, **kw).choices[0].text == alone
    assert pair.client().completions.create(model=SMOL, **kw).model == SMALL
    assert pair.client().completions.create(model=BIG, **kw).choices[0].text != alone


def test_each_model_has_its_own_context(pair):
    long_prompt = "hello " * 700
    r = pair.client().completions.create(model=SMALL, prompt=long_prompt, max_tokens=1, temperature=0)
    assert r.usage.prompt_tokens > 512
    with pytest.raises(openai.BadRequestError) as e:
        pair.client().completions.create(model=BIG, prompt=long_prompt, max_tokens=1)
    assert e.value.body["code"] == "context_length_exceeded"
    assert "512" in e.value.body["message"]


def test_unknown_model_is_404_model_not_found_naming_the_served_ones(pair):
    with pytest.raises(openai.NotFoundError) as e:
        pair.client().chat.completions.create(model="gpt-4", messages=MSG, max_tokens=4)
    body = e.value.body
    assert body["code"] == "model_not_found" and body["param"] == "model"
    assert SMALL in body["message"] and BIG in body["message"]
    r = httpx.get(pair.url("/v1/models/gpt-4"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    # ... and both models keep serving.
    assert pair.client().chat.completions.create(model=BIG, messages=MSG, max_tokens=2).model == BIG


def test_a_request_without_model_goes_to_the_first(pair):
    r = httpx.post(pair.url("/v1/completions"), json={"prompt": "Hi", "max_tokens": 2}, timeout=120)
    assert r.status_code == 200 and r.json()["model"] == SMALL


def test_tokenize_uses_the_named_models_vocabulary(pair):
    def toks(model):
        r = httpx.post(pair.url("/tokenize"), json={"content": "안녕하세요, world", "model": model}, timeout=30)
        assert r.status_code == 200
        return r.json()["tokens"]

    assert toks(SMALL) != toks(BIG)
    r = httpx.post(pair.url("/tokenize"), json={"content": "x", "model": "nope"}, timeout=30)
    assert r.status_code == 404


def test_props_ready_and_metrics_cover_both_models(pair):
    props = httpx.get(pair.url("/props")).json()
    assert props["model"] == SMALL and props["models"] == [SMALL, BIG]
    assert props["n_ctx"] == 1024
    assert httpx.get(pair.url("/ready")).status_code == 200
    pair.client().completions.create(model=BIG, prompt="One", max_tokens=3, temperature=0)
    m = pair.metrics()
    for model in (SMALL, BIG):
        assert f'jikji_model_queue_depth{{model="{model}"}}' in m
        assert f'jikji_model_kv_cache_usage_ratio{{model="{model}"}}' in m
    assert m[f'jikji_model_generated_tokens_total{{model="{BIG}"}}'] >= 3
    # The unlabelled series are the sums over both models.
    per_model = sum(m[f'jikji_model_generated_tokens_total{{model="{x}"}}'] for x in (SMALL, BIG))
    assert m["jikji_generated_tokens_total"] == per_model
    pools = [k for k in m if k.startswith("jikji_cache_config_info{")]
    assert len(pools) == 2 and any(f'model="{BIG}"' in k for k in pools)


def test_more_aliases_than_models_is_refused_before_loading():
    r = subprocess.run([BIN, "serve", "-m", SMOL, "--model-alias", "a", "--model-alias", "b", "--port", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "--model-alias" in r.stderr and "n-th" in r.stderr


def test_two_models_with_one_name_are_refused():
    r = subprocess.run([BIN, "serve", "-m", SMOL, "-m", QWEN, "--model-alias", "same", "--model-alias", "same",
                        "--port", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "`same`" in r.stderr
