// Weights stay in their GGUF block layout on the device (uploaded once, unrepacked); these
// kernels dequantize one 32-element sub-block at a time into registers. Type codes are
// ggml's (`enum ggml_type`).
#define T_F32 0
#define T_F16 1
#define T_Q4_0 2
#define T_Q4_1 3
#define T_Q5_0 6
#define T_Q5_1 7
#define T_Q8_0 8
#define T_Q2_K 10
#define T_Q3_K 11
#define T_Q4_K 12
#define T_Q5_K 13
#define T_Q6_K 14
#define T_BF16 30

// 6-bit scale and min `j` (0..7) of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).
__device__ __forceinline__ void scale_min_k4(int j, const u8* q, float* sc, float* mn) {
    if (j < 4) {
        *sc = (float)(q[j] & 63);
        *mn = (float)(q[j + 4] & 63);
    } else {
        *sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *mn = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Elements `[32 sb, 32 sb + 32)` of a row of `cols` values of type `ty` starting at `row`,
// into `w`. Float rows may end inside the sub-block: missing elements are 0.
__device__ void dq32(int ty, const u8* row, int sb, int cols, float* w) {
    switch (ty) {
    case T_F32: {
        const float* r = (const float*)row;
        for (int l = 0; l < 32; l++) { int i = sb * 32 + l; w[l] = i < cols ? r[i] : 0.0f; }
        break;
    }
    case T_F16: {
        for (int l = 0; l < 32; l++) { int i = sb * 32 + l; w[l] = i < cols ? h2f(ld16(row + 2 * i)) : 0.0f; }
        break;
    }
    case T_BF16: {
        for (int l = 0; l < 32; l++) { int i = sb * 32 + l; w[l] = i < cols ? bf2f(ld16(row + 2 * i)) : 0.0f; }
        break;
    }
    case T_Q4_0: {
        const u8* b = row + sb * 18;
        float d = h2f(ld16(b));
        for (int l = 0; l < 16; l++) {
            w[l] = (float)((int)(b[2 + l] & 0xF) - 8) * d;
            w[l + 16] = (float)((int)(b[2 + l] >> 4) - 8) * d;
        }
        break;
    }
    case T_Q4_1: {
        const u8* b = row + sb * 20;
        float d = h2f(ld16(b)), m = h2f(ld16(b + 2));
        for (int l = 0; l < 16; l++) {
            w[l] = (float)(b[4 + l] & 0xF) * d + m;
            w[l + 16] = (float)(b[4 + l] >> 4) * d + m;
        }
        break;
    }
    case T_Q5_0: {
        const u8* b = row + sb * 22;
        float d = h2f(ld16(b));
        u32 qh = ld32(b + 2);
        for (int l = 0; l < 16; l++) {
            int h0 = ((qh >> l) << 4) & 0x10, h1 = (qh >> (l + 12)) & 0x10;
            w[l] = (float)(((b[6 + l] & 0xF) | h0) - 16) * d;
            w[l + 16] = (float)(((b[6 + l] >> 4) | h1) - 16) * d;
        }
        break;
    }
    case T_Q5_1: {
        const u8* b = row + sb * 24;
        float d = h2f(ld16(b)), m = h2f(ld16(b + 2));
        u32 qh = ld32(b + 4);
        for (int l = 0; l < 16; l++) {
            int h0 = ((qh >> l) << 4) & 0x10, h1 = (qh >> (l + 12)) & 0x10;
            w[l] = (float)((b[8 + l] & 0xF) | h0) * d + m;
            w[l + 16] = (float)((b[8 + l] >> 4) | h1) * d + m;
        }
        break;
    }
    case T_Q8_0: {
        const u8* b = row + sb * 34;
        float d = h2f(ld16(b));
        for (int l = 0; l < 32; l++) w[l] = (float)(i8)b[2 + l] * d;
        break;
    }
    case T_Q2_K: {
        const u8* b = row + (sb >> 3) * 84;
        int j = sb & 7, n = j >> 2, k = j & 3;
        const u8* sc = b;
        const u8* q = b + 16 + 32 * n;
        float d = h2f(ld16(b + 80)), dmin = h2f(ld16(b + 82));
        for (int l = 0; l < 32; l++) {
            u8 s = sc[8 * n + 2 * k + (l >= 16)];
            w[l] = d * (float)(s & 0xF) * (float)((q[l] >> (2 * k)) & 3) - dmin * (float)(s >> 4);
        }
        break;
    }
    case T_Q3_K: {
        const u8* b = row + (sb >> 3) * 110;
        int j = sb & 7, n = j >> 2, k = j & 3;
        const u8* hm = b;
        const u8* q = b + 32 + 32 * n;
        const u8* s = b + 96;
        float d = h2f(ld16(b + 108));
        for (int l = 0; l < 32; l++) {
            int i = 8 * n + 2 * k + (l >= 16);
            int g = i >> 2, bi = i & 3;
            int lo = (s[bi + 4 * (g & 1)] >> (4 * (g >> 1))) & 0xF;
            int hi = (s[8 + bi] >> (2 * g)) & 3;
            float dl = d * (float)((lo | (hi << 4)) - 32);
            int v = (int)((q[l] >> (2 * k)) & 3) - ((hm[l] & (1 << j)) ? 0 : 4);
            w[l] = dl * (float)v;
        }
        break;
    }
    case T_Q4_K: {
        const u8* b = row + (sb >> 3) * 144;
        int j = sb & 7;
        float d = h2f(ld16(b)), dmin = h2f(ld16(b + 2)), sc, mn;
        scale_min_k4(j, b + 4, &sc, &mn);
        const u8* q = b + 16 + 32 * (j >> 1);
        float d1 = d * sc, m1 = dmin * mn;
        for (int l = 0; l < 32; l++) w[l] = d1 * (float)((j & 1) ? (q[l] >> 4) : (q[l] & 0xF)) - m1;
        break;
    }
    case T_Q5_K: {
        const u8* b = row + (sb >> 3) * 176;
        int j = sb & 7;
        float d = h2f(ld16(b)), dmin = h2f(ld16(b + 2)), sc, mn;
        scale_min_k4(j, b + 4, &sc, &mn);
        const u8* qh = b + 16;
        const u8* q = b + 48 + 32 * (j >> 1);
        float d1 = d * sc, m1 = dmin * mn;
        for (int l = 0; l < 32; l++) {
            int v = ((j & 1) ? (q[l] >> 4) : (q[l] & 0xF)) + ((qh[l] >> j) & 1) * 16;
            w[l] = d1 * (float)v - m1;
        }
        break;
    }
    case T_Q6_K: {
        const u8* b = row + (sb >> 3) * 210;
        int j = sb & 7, n = j >> 2, k = j & 3;
        const u8* ql = b + 64 * n + ((k & 1) ? 32 : 0);
        const u8* qh = b + 128 + 32 * n;
        const i8* sc = (const i8*)(b + 192) + 8 * n;
        float d = h2f(ld16(b + 208));
        for (int l = 0; l < 32; l++) {
            int lo = (k & 2) ? (ql[l] >> 4) : (ql[l] & 0xF);
            int hi = (qh[l] >> (2 * k)) & 3;
            w[l] = d * (float)sc[(l >> 4) + 2 * k] * (float)((lo | (hi << 4)) - 32);
        }
        break;
    }
    default:
        for (int l = 0; l < 32; l++) w[l] = 0.0f;
    }
}

#define MM_TOK 8

// Y[t, r] = Σ_c W[r, c] X[t, c]: W `[rows, cols]` of type `ty` (`row_bytes` per row),
// X `[n_tok, cols]` f32, Y `[n_tok, rows]` f32 with rows `ldy` apart. One warp per weight
// row and up to MM_TOK tokens (grid.y walks the token tiles); lanes stride over the
// 32-element sub-blocks, dequantized once per tile and dotted with every token of it.
extern "C" __global__ void mm_q(const u8* W, int ty, int rows, int cols, u64 row_bytes, const float* X, int n_tok, float* Y, int ldy) {
    int warps = blockDim.x >> 5;
    int r = blockIdx.x * warps + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (r >= rows) return;
    int t0 = blockIdx.y * MM_TOK;
    int nt = min(MM_TOK, n_tok - t0);
    const u8* row = W + (u64)r * row_bytes;
    float acc[MM_TOK];
    for (int t = 0; t < MM_TOK; t++) acc[t] = 0.0f;
    int nsb = (cols + 31) / 32;
    float w[32];
    for (int sb = lane; sb < nsb; sb += 32) {
        dq32(ty, row, sb, cols, w);
        int c0 = sb * 32, nc = min(32, cols - c0);
        for (int t = 0; t < nt; t++) {
            const float* x = X + (u64)(t0 + t) * cols + c0;
            float s = 0.0f;
            for (int l = 0; l < nc; l++) s += w[l] * x[l];
            acc[t] += s;
        }
    }
    for (int t = 0; t < nt; t++) {
        float s = warp_sum(acc[t]);
        if (lane == 0) Y[(u64)(t0 + t) * ldy + r] = s;
    }
}

// Embedding rows: out[i, :] = dequantized row ids[i] of W. One thread per sub-block.
extern "C" __global__ void get_rows(const u8* W, int ty, int cols, u64 row_bytes, const int* ids, int n, float* out) {
    int nsb = (cols + 31) / 32;
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= n * nsb) return;
    int i = g / nsb, sb = g % nsb;
    float w[32];
    dq32(ty, W + (u64)ids[i] * row_bytes, sb, cols, w);
    int c0 = sb * 32, nc = min(32, cols - c0);
    for (int l = 0; l < nc; l++) out[(u64)i * cols + c0 + l] = w[l];
}
