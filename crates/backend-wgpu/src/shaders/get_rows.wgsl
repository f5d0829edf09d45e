// Embedding rows: out[i, :] = the dequantized row ids[i] of W. One thread per 32-element
// sub-block.
struct P {
    ty: u32,
    cols: u32,
    stride: u32,
    n: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 256u + li;
    let nsb = (p.cols + 31u) / 32u;
    if (g >= p.n * nsb) {
        return;
    }
    let i = g / nsb;
    let sb = g % nsb;
    var w: array<f32, 32>;
    dq32(p.ty, ids[i] * p.stride, sb, p.cols, &w);
    let c0 = sb * 32u;
    let nc = min(32u, p.cols - c0);
    for (var l = 0u; l < nc; l++) {
        out[i * p.cols + c0 + l] = w[l];
    }
}
