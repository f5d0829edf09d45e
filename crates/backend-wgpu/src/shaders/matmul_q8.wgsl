// Y[t, row0 + r] = Σ_c W[r, c] X[t, c] for the legacy 32-value block types (Q4_0, Q4_1,
// Q5_0, Q5_1, Q8_0) against activations quantized to 8 bits (`quant_q8.wgsl`, XQ), in
// integers as ggml's vec_dot_q*_q8 do: per block the weight quants are packed four to a
// word and dotted with the activation quants by dot4I8Packed (an exact integer sum), then
// scaled: d_w · d_x · Σ w_q x_q, plus m_w · s_x for the types with a minimum. The nibble
// types' offset (−8, −16) is taken out as offset · Σ x_q, so the packed bytes stay the
// unsigned nibbles. Workgroups and reduction as in `matmul.wgsl`.
struct P {
    ty: u32,
    rows: u32,
    cols: u32,
    stride: u32,
    n_tok: u32,
    ldy: u32,
    row0: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> XQ: array<u32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

const TOK: u32 = 8u;
const LANES: u32 = 64u;
const Q8_WORDS: u32 = 11u;

//!REDUCE

// The 4 bits of `qh` from bit `i0`, each moved to bit 4 of its byte.
fn hbits(qh: u32, i0: u32) -> u32 {
    let b = qh >> i0;
    return ((b & 1u) << 4u) | ((b & 2u) << 11u) | ((b & 4u) << 18u) | ((b & 8u) << 25u);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lane: u32 //!SGARGS
) {
    let g = wid.x + wid.y * nwg.x;
    let tiles = (p.n_tok + TOK - 1u) / TOK;
    if (g >= p.rows * tiles) {
        return;
    }
    let r = g % p.rows;
    let t0 = (g / p.rows) * TOK;
    let nt = min(TOK, p.n_tok - t0);
    let row = r * p.stride;
    var acc: array<f32, 8>;
    let nsb = p.cols / 32u;
    var wq: array<u32, 8>;
    for (var sb = lane; sb < nsb; sb += LANES) {
        var dw = 0.0;
        var mw = 0.0;
        var off = 0i; // the quants' offset: w = dw · (q + off) (+ mw)
        switch p.ty {
            case 8u: { // Q8_0: d, 32 × i8
                let b = row + sb * 34u;
                dw = h16(b);
                for (var k = 0u; k < 8u; k++) {
                    wq[k] = u32at(b + 2u + 4u * k);
                }
            }
            case 2u, 3u: { // Q4_0: d, 16 bytes of nibbles (−8); Q4_1: d, m, nibbles
                let has_m = p.ty == 3u;
                let b = row + sb * select(18u, 20u, has_m);
                dw = h16(b);
                var qs = b + 2u;
                if (has_m) {
                    mw = h16(b + 2u);
                    qs = b + 4u;
                } else {
                    off = -8;
                }
                for (var k = 0u; k < 4u; k++) {
                    let v = u32at(qs + 4u * k);
                    wq[k] = v & 0x0f0f0f0fu;
                    wq[k + 4u] = (v >> 4u) & 0x0f0f0f0fu;
                }
            }
            default: { // Q5_0: d, qh, nibbles (−16); Q5_1: d, m, qh, nibbles
                let has_m = p.ty == 7u;
                let b = row + sb * select(22u, 24u, has_m);
                dw = h16(b);
                var qo = b + 2u;
                if (has_m) {
                    mw = h16(b + 2u);
                    qo = b + 4u;
                } else {
                    off = -16;
                }
                let qh = u32at(qo);
                for (var k = 0u; k < 4u; k++) {
                    let v = u32at(qo + 4u + 4u * k);
                    wq[k] = (v & 0x0f0f0f0fu) | hbits(qh, 4u * k);
                    wq[k + 4u] = ((v >> 4u) & 0x0f0f0f0fu) | hbits(qh, 16u + 4u * k);
                }
            }
        }
        for (var t = 0u; t < nt; t++) {
            let xb = ((t0 + t) * nsb + sb) * Q8_WORDS;
            var isum = 0i;
            for (var k = 0u; k < 8u; k++) {
                isum += dot4I8Packed(wq[k], XQ[xb + k]);
            }
            isum += off * bitcast<i32>(XQ[xb + 10u]);
            let dx = bitcast<f32>(XQ[xb + 8u]);
            let sx = bitcast<f32>(XQ[xb + 9u]);
            acc[t] += dw * dx * f32(isum) + mw * sx;
        }
    }
    let tot = reduce(&acc, lane //!SGCALL
    );
    if (lane < nt) {
        Y[(t0 + lane) * p.ldy + p.row0 + r] = tot;
    }
}
