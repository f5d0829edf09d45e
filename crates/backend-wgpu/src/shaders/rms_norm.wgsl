// y[g, :] = x[g, :] / sqrt(mean(x[g, :]^2) + eps) * w for each group of `n` values (a row,
// or one head when `w` is narrower than a row). One workgroup per group; the sum of
// squares is reduced in workgroup memory. Each lane reads its elements before any lane
// writes (the barrier of the reduction), so y may alias x (the in-place variant binds the
// same buffer through `y` only).
struct P {
    n: u32,
    eps: f32,
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<uniform> p: P;
//!BINDINGS

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = wid.x + wid.y * nwg.x;
    let base = g * p.n;
    var s = 0.0;
    for (var i = li; i < p.n; i += 256u) {
        let v = SRC[base + i];
        s += v * v;
    }
    red[li] = s;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (li < k) {
            red[li] += red[li + k];
        }
        workgroupBarrier();
    }
    let scale = 1.0 / sqrt(red[0] / f32(p.n) + p.eps);
    for (var i = li; i < p.n; i += 256u) {
        y[base + i] = SRC[base + i] * scale * w[i];
    }
}
