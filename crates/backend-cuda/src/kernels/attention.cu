// KV storage and attention. A cache layer holds keys and values as `[slots, width]`, f32
// or f16 bits; a row of a step reaches position p of its sequence at slot
// `tbl ? tbl[p / bs] * bs + p % bs : p` (paged pool: the sequence's block table; contiguous
// cache: the position itself).

__device__ __forceinline__ u64 slot_of(const int* tbl, int bs, int p) {
    return tbl ? (u64)tbl[p / bs] * bs + (u64)(p % bs) : (u64)p;
}

__device__ __forceinline__ float kv_load(const void* base, int f16, u64 i) {
    return f16 ? h2f(((const u16*)base)[i]) : ((const float*)base)[i];
}

// cache[slot[r], :] = src[r, :] for each step row r (`width` values, f16 or f32 cache).
extern "C" __global__ void kv_store(void* cache, int f16, const float* src, const u64* slot, int width, int rows) {
    u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (u64)rows * width) return;
    int r = g / width, c = g % width;
    u64 d = slot[r] * width + c;
    if (f16) ((u16*)cache)[d] = f2h(src[g]);
    else ((float*)cache)[d] = src[g];
}

// One block per (row, head): scores of the row's query against the visible keys
// (positions lo[r]..=pos[r]) into `sc` (row-major, `span` floats per (row, head)), softmax,
// then the probability-weighted sum of values into out `[rows, n_head * dv]`.
// Row r's block table starts at tbl + tbl_off[r] (tbl null: contiguous cache). `vstride`
// nonzero (latent attention): V is the key buffer, a value the first dv values of its key
// row, `vstride` wide.
extern "C" __global__ void attend(const float* q, const void* K, const void* V, int f16,
                                  const int* pos, const int* lo, const int* tbl, const int* tbl_off, int bs,
                                  int n_head, int n_head_kv, int dk, int dv, int vstride, float kq_scale,
                                  float* sc, int span, int r0, float* out) {
    __shared__ float scratch[32];
    extern __shared__ float qs[]; // [dk]
    int r = r0 + blockIdx.x, h = blockIdx.y;
    int kvh = h / (n_head / n_head_kv);
    const float* qr = q + ((u64)r * n_head + h) * dk;
    for (int i = threadIdx.x; i < dk; i += blockDim.x) qs[i] = qr[i];
    __syncthreads();
    const int* t = tbl ? tbl + tbl_off[r] : (const int*)0;
    int p0 = lo[r], n = pos[r] - p0 + 1;
    float* s = sc + ((u64)(r - r0) * n_head + h) * span;
    u64 kw = (u64)n_head_kv * dk, vw = vstride ? (u64)vstride : (u64)n_head_kv * dv;
    float mx = -JK_INF;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        u64 base = slot_of(t, bs, p0 + j) * kw + (u64)kvh * dk;
        float d = 0.0f;
        for (int i = 0; i < dk; i++) d += qs[i] * kv_load(K, f16, base + i);
        d *= kq_scale;
        s[j] = d;
        mx = fmaxf(mx, d);
    }
    mx = block_max(mx, scratch);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float e = expf(s[j] - mx);
        s[j] = e;
        sum += e;
    }
    sum = block_sum(sum, scratch);
    __syncthreads();
    float inv = 1.0f / sum;
    float* o = out + ((u64)r * n_head + h) * dv;
    for (int c = threadIdx.x; c < dv; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n; j++) acc += s[j] * kv_load(V, f16, slot_of(t, bs, p0 + j) * vw + (u64)kvh * dv + c);
        o[c] = acc * inv;
    }
}
