"""Retrieval over a few Korean paragraphs with one `jikji serve` holding two models.

    jikji serve -m qwen2.5-0.5b -m nomic-embed-text-v1.5 &
    python3 examples/retrieval.py [--base-url http://127.0.0.1:8080/v1] [QUESTION]

The embedding model indexes the paragraphs, the question is embedded the same way, the
nearest paragraphs (cosine of L2-normalised vectors: a dot product) are printed with their
scores, and the chat model answers from them alone. nomic-embed-text-v1.5 expects task
prefixes: `search_document: ` for what is indexed, `search_query: ` for the question.

nomic-embed-text-v1.5 was trained on English: between Korean-only texts its cosines barely
separate (about 0.70-0.79 for every paragraph of this page, the right one not first), so
the paragraphs carry the English glosses that Korean reference texts often print, and the
question one term. For a Korean-only corpus serve a multilingual or Korean `bert` encoder
from its Hugging Face directory (`jikji serve -m DIR`) and pass `--embed-model`.
Only the `openai` package is needed; `--json` prints the ranking and answer as JSON (the CI
test reads that).
"""

import argparse
import json
import sys

import openai

PARAGRAPHS = [
    "직지심체요절(Jikji)은 1377년 고려 청주 흥덕사에서 금속활자(movable metal type)로 인쇄된 "
    "불교 문헌으로, 현존하는 세계에서 가장 오래된 금속활자본이다. 하권 한 책이 프랑스 "
    "국립도서관(Bibliothèque nationale de France)에 남아 있다.",
    "훈민정음(Hunminjeongeum)은 1443년 세종대왕(King Sejong)이 창제하고 1446년에 반포한 "
    "문자(the Korean alphabet, Hangul)로, 백성이 쉽게 익혀 쓰도록 만든 스물여덟 글자였다.",
    "경주 불국사(Bulguksa temple)는 8세기 신라 경덕왕 때 김대성이 세웠다고 전하며, "
    "석가탑과 다보탑(stone pagodas)이 대웅전 앞마당에 서 있다.",
    "김치(kimchi)는 배추나 무를 소금에 절인 뒤 고춧가루, 마늘, 젓갈 등으로 버무려 "
    "발효시킨(fermented) 한국의 대표 음식이며, 김장(kimjang)은 겨울을 앞두고 김치를 많이 "
    "담그는 풍습이다.",
    "한라산(Hallasan)은 제주도(Jeju Island) 한가운데 있는 높이 1,947미터의 화산(volcano)으로, "
    "남한에서 가장 높은 산(mountain)이며 정상에 백록담이라는 화구호(crater lake)가 있다.",
    "서울 지하철 2호선(Seoul Subway Line 2)은 도심과 강남을 한 바퀴 도는 "
    "순환선(circular line)으로, 1984년에 전 구간이 개통되었다.",
]
DEFAULT_QUESTION = "세계에서 가장 오래된 금속활자본(metal type book)은 어디에서 인쇄되었나요?"


def embed(client, model, texts):
    out = client.embeddings.create(model=model, input=texts)
    return [d.embedding for d in sorted(out.data, key=lambda d: d.index)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", default="unused")
    ap.add_argument("--embed-model", default="nomic-embed-text-v1.5")
    ap.add_argument("--chat-model", default="qwen2.5-0.5b")
    ap.add_argument("--top", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key)
    docs = embed(client, args.embed_model, ["search_document: " + p for p in PARAGRAPHS])
    (query,) = embed(client, args.embed_model, ["search_query: " + args.question])
    scores = [sum(a * b for a, b in zip(query, d)) for d in docs]
    ranked = sorted(range(len(PARAGRAPHS)), key=lambda i: -scores[i])[: args.top]

    context = "\n".join(f"- {PARAGRAPHS[i]}" for i in ranked)
    reply = client.chat.completions.create(
        model=args.chat_model,
        temperature=0,
        max_tokens=96,
        messages=[
            {"role": "system", "content": "주어진 자료만 근거로 한국어로 짧게 답하세요."},
            {"role": "user", "content": f"자료:\n{context}\n\n질문: {args.question}"},
        ],
    )
    answer = reply.choices[0].message.content

    if args.json:
        json.dump({"ranked": [{"index": i, "score": scores[i]} for i in ranked], "answer": answer},
                  sys.stdout, ensure_ascii=False)
        print()
        return
    print(f"질문: {args.question}\n")
    for i in ranked:
        print(f"[{scores[i]:.3f}] {PARAGRAPHS[i]}")
    print(f"\n답: {answer}")


if __name__ == "__main__":
    main()
