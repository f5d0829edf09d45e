// Norms, residuals, rope and gated activations over f32 activations `[rows, width]`.

// y[g, :] = x[g, :] / sqrt(mean(x[g, :]^2) + eps) * w for each group of `n` values (a row,
// or one head when `w` is narrower than a row). One block per group. Each thread reads an
// element before it writes it, so `y` may be `x` (rms_norm_inplace).
__device__ void rms_norm_group(const float* x, const float* w, float* y, int n, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (u64)blockIdx.x * n;
    float* yr = y + (u64)blockIdx.x * n;
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i] * xr[i];
    s = block_sum(s, scratch);
    float scale = 1.0f / sqrtf(s / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

extern "C" __global__ void rms_norm(const float* x, const float* w, float* y, int n, float eps) {
    rms_norm_group(x, w, y, n, eps);
}

extern "C" __global__ void rms_norm_inplace(float* x, const float* w, int n, float eps) {
    rms_norm_group(x, w, x, n, eps);
}

extern "C" __global__ void add(float* x, const float* y, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

extern "C" __global__ void add_row(float* x, const float* b, int width, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += b[i % width];
}

extern "C" __global__ void scale(float* x, float s, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

// gate = act(gate) * up; act 0 = SiLU, 1 = tanh-approximated GELU.
extern "C" __global__ void glu(float* g, const float* u, int act, u64 n) {
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = g[i];
    float a;
    if (act == 0) {
        a = v / (1.0f + expf(-v));
    } else {
        a = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * v * (1.0f + 0.044715f * v * v)));
    }
    g[i] = a * u[i];
}

// ggml's rope_yarn ramp: 1 below the correction range, 0 above.
__device__ __forceinline__ float yarn_ramp(float low, float high, int i0) {
    float y = ((float)i0 / 2.0f - low) / fmaxf(0.001f, high - low);
    return 1.0f - fminf(1.0f, fmaxf(0.0f, y));
}

// Rotates pairs of every `head_dim` block of each row at `pos[row]`. One thread per
// (row, head, pair). neox: pairs (i, i + n_rot/2), else (2i, 2i+1). `ff` (or null) divides
// each pair's frequency. ext_factor 0 = plain rope (then mscale is used as given).
extern "C" __global__ void rope(float* x, const int* pos, int rows, int width, int head_dim, int n_rot, int neox,
                                float base, float freq_scale, float ext_factor, float mscale, float corr0, float corr1,
                                const float* ff) {
    int half_rot = n_rot / 2;
    int heads = width / head_dim;
    u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (u64)rows * heads * half_rot) return;
    int i = g % half_rot;
    int h = (g / half_rot) % heads;
    int r = g / ((u64)half_rot * heads);
    float theta_extrap = (float)pos[r] * powf(base, -2.0f * (float)i / (float)n_rot);
    if (ff) theta_extrap /= ff[i];
    float theta_interp = freq_scale * theta_extrap;
    float theta = theta_interp;
    float m = mscale;
    if (ext_factor != 0.0f) {
        float mix = yarn_ramp(corr0, corr1, 2 * i) * ext_factor;
        theta = theta_interp * (1.0f - mix) + theta_extrap * mix;
        m *= 1.0f + 0.1f * logf(1.0f / freq_scale);
    }
    float c = cosf(theta) * m, s = sinf(theta) * m;
    float* xh = x + (u64)r * width + h * head_dim;
    int a = neox ? i : 2 * i;
    int b = neox ? i + half_rot : 2 * i + 1;
    float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * c - x1 * s;
    xh[b] = x0 * s + x1 * c;
}

// out[i, :] = x[idx[i], :].
extern "C" __global__ void gather_rows(const float* x, const int* idx, int width, int n, float* out) {
    u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (u64)n * width) return;
    int i = g / width, c = g % width;
    out[g] = x[(u64)idx[i] * width + c];
}

// out[idx[i], :] += w[i] * src[i, :], for rows i in order (one launch per expert, so no two
// threads of a launch touch the same output row).
extern "C" __global__ void scatter_add_scaled(float* out, const float* src, const int* idx, const float* w, int width, int n) {
    u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (u64)n * width) return;
    int i = g / width, c = g % width;
    out[(u64)idx[i] * width + c] += w[i] * src[g];
}

// dst[r, d_off + c] = src[r, s_off + c] for c < width, rows `s_w` / `d_w` wide: the column
// windows latent attention moves between its steps.
extern "C" __global__ void copy_cols(const float* src, int s_w, int s_off, float* dst, int d_w, int d_off, int width, int rows) {
    u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (u64)rows * width) return;
    u64 r = g / width, c = g % width;
    dst[r * d_w + d_off + c] = src[r * s_w + s_off + c];
}
