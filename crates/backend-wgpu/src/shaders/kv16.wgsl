// Stores rows into an f16 KV cache layer packed two values to a word (`pack2x16float`,
// round to nearest even, as the CPU's f16 caches round): cache[idx[i], c..c+2] =
// src[i, c..c+2], one thread per pair. `width` is even, so every row starts on a word.
struct P {
    width: u32,
    n: u32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 256u + li;
    let half_w = p.width / 2u;
    if (g >= p.n * half_w) {
        return;
    }
    let i = g / half_w;
    let c = 2u * (g % half_w);
    let s = i * p.width + c;
    out[(idx[i] * p.width + c) / 2u] = pack2x16float(vec2<f32>(src[s], src[s + 1u]));
}
