// Prints llama.cpp's logits for token ids, for reference fixtures (scripts/make_tiny_exaone.py).
//
//   llama_logits MODEL.gguf N_GREEDY ID ID ...
//
// Evaluates the ids as one batch with every row's logits requested, then N_GREEDY greedy
// steps one token at a time. Prints one JSON object: {"rows": [[logit, ...] per prompt
// position], "greedy": [id, ...]}. Built against llama.cpp's public API (llama.h) and its
// static libraries; see make_tiny_exaone.py for the compile line.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

static int argmax(const float * row, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) {
        if (row[i] > row[best]) best = i;
    }
    return best;
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL N_GREEDY ID...\n", argv[0]);
        return 2;
    }
    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const int n_greedy = atoi(argv[2]);
    std::vector<llama_token> ids;
    for (int i = 3; i < argc; i++) ids.push_back(atoi(argv[i]));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create a context\n"); return 1; }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    llama_batch batch = llama_batch_init((int) ids.size(), 0, 1);
    for (size_t i = 0; i < ids.size(); i++) {
        batch.token[i] = ids[i];
        batch.pos[i] = (llama_pos) i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = (int) ids.size();
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    printf("{\"rows\": [");
    for (size_t i = 0; i < ids.size(); i++) {
        const float * row = llama_get_logits_ith(ctx, (int) i);
        printf(i ? ",\n[" : "[");
        for (int v = 0; v < n_vocab; v++) printf(v ? ",%.7g" : "%.7g", row[v]);
        printf("]");
    }
    printf("],\n\"greedy\": [");
    llama_token next = argmax(llama_get_logits_ith(ctx, (int) ids.size() - 1), n_vocab);
    llama_batch one = llama_batch_init(1, 0, 1);
    for (int s = 0; s < n_greedy; s++) {
        printf(s ? ",%d" : "%d", next);
        one.token[0] = next;
        one.pos[0] = (llama_pos) (ids.size() + s);
        one.n_seq_id[0] = 1;
        one.seq_id[0][0] = 0;
        one.logits[0] = 1;
        one.n_tokens = 1;
        if (llama_decode(ctx, one) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        next = argmax(llama_get_logits_ith(ctx, 0), n_vocab);
    }
    printf("]}\n");
    llama_batch_free(batch);
    llama_batch_free(one);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
