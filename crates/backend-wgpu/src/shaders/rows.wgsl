// Row moves by index: op 0 gathers (out[i, :] = src[idx[i], :]); op 1 adds back scaled
// (out[idx[i], :] += w[i] * src[i, :], one dispatch per expert so no two threads touch the
// same element); op 2 stores into a KV cache layer (out[idx[i], :] = src[i, :], rounded
// to f16 when `f16`, as the CPU's f16 caches round); op 3 copies a column window between
// activations of the same row count (out[i, d_off + c] = src[i, s_off + c], c < width;
// rows s_w and d_w wide), the reshapes of latent attention.
struct P {
    op: u32,
    width: u32,
    n: u32,
    f16: u32,
    s_w: u32,
    s_off: u32,
    d_w: u32,
    d_off: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read> wt: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 256u + li;
    if (g >= p.n * p.width) {
        return;
    }
    let i = g / p.width;
    let c = g % p.width;
    switch p.op {
        case 0u: {
            out[g] = src[idx[i] * p.width + c];
        }
        case 1u: {
            out[idx[i] * p.width + c] += wt[i] * src[g];
        }
        case 3u: {
            out[i * p.d_w + p.d_off + c] = src[i * p.s_w + p.s_off + c];
        }
        default: {
            var v = src[g];
            if (p.f16 != 0u) {
                v = unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
            }
            out[idx[i] * p.width + c] = v;
        }
    }
}
