// Y[t, row0 + r] = Σ_c W[r, c] X[t, c] for one chunk of a weight matrix (a chunk holds
// at most the device's storage-binding limit of rows). W: `rows` rows of `cols` values of
// type `ty`, `stride` bytes apart; X: `[n_tok, cols]` f32; Y: `[n_tok, ldy]` f32.
//
// One workgroup per (weight row, tile of TOK tokens): a decode step (1 token) is a
// matrix-vector product reading each weight byte once; a prompt reads it once per TOK
// tokens (the tile dequantizes a 32-element sub-block once and dots it with every token
// of the tile). Lanes stride over sub-blocks; the partial sums are reduced by `reduce`
// (subgroup operations where the device has them, workgroup memory otherwise).
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
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

const TOK: u32 = 8u;
const LANES: u32 = 64u;

//!REDUCE

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
    let nsb = (p.cols + 31u) / 32u;
    var w: array<f32, 32>;
    for (var sb = lane; sb < nsb; sb += LANES) {
        dq32(p.ty, row, sb, p.cols, &w);
        let c0 = sb * 32u;
        let nc = min(32u, p.cols - c0);
        for (var t = 0u; t < nt; t++) {
            let xo = (t0 + t) * p.cols + c0;
            var s = 0.0;
            for (var l = 0u; l < nc; l++) {
                s += w[l] * X[xo + l];
            }
            acc[t] += s;
        }
    }
    let tot = reduce(&acc, lane //!SGCALL
    );
    if (lane < nt) {
        Y[(t0 + lane) * p.ldy + p.row0 + r] = tot;
    }
}
