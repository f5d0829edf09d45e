// Rotates pairs of every `head_dim` block of each row at pos[row]. One thread per
// (row, head, pair). neox: pairs (i, i + n_rot/2), else (2i, 2i+1). ff[i] divides pair i's
// frequency when has_ff. ext_factor 0 = plain rope (mscale used as given), else YaRN as
// ggml's rope_yarn.
struct P {
    rows: u32,
    width: u32,
    head_dim: u32,
    n_rot: u32,
    neox: u32,
    has_ff: u32,
    base: f32,
    freq_scale: f32,
    ext_factor: f32,
    mscale: f32,
    corr0: f32,
    corr1: f32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read> ff: array<f32>;

fn yarn_ramp(low: f32, high: f32, i0: u32) -> f32 {
    let y = (f32(i0) / 2.0 - low) / max(0.001, high - low);
    return 1.0 - min(1.0, max(0.0, y));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 256u + li;
    let half_rot = p.n_rot / 2u;
    let heads = p.width / p.head_dim;
    if (g >= p.rows * heads * half_rot) {
        return;
    }
    let i = g % half_rot;
    let h = (g / half_rot) % heads;
    let r = g / (half_rot * heads);
    var theta_extrap = f32(pos[r]) * pow(p.base, -2.0 * f32(i) / f32(p.n_rot));
    if (p.has_ff != 0u) {
        theta_extrap /= ff[i];
    }
    let theta_interp = p.freq_scale * theta_extrap;
    var theta = theta_interp;
    var m = p.mscale;
    if (p.ext_factor != 0.0) {
        let mix = yarn_ramp(p.corr0, p.corr1, 2u * i) * p.ext_factor;
        theta = theta_interp * (1.0 - mix) + theta_extrap * mix;
        m *= 1.0 + 0.1 * log(1.0 / p.freq_scale);
    }
    let c = cos(theta) * m;
    let s = sin(theta) * m;
    let xh = r * p.width + h * p.head_dim;
    let a = select(2u * i, i, p.neox != 0u);
    let b = select(2u * i + 1u, i + half_rot, p.neox != 0u);
    let x0 = x[xh + a];
    let x1 = x[xh + b];
    x[xh + a] = x0 * c - x1 * s;
    x[xh + b] = x0 * s + x1 * c;
}
