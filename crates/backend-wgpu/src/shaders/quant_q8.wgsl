// Activations X `[n, cols]` (cols a multiple of 32) quantized to 8 bits per 32-value
// block as ggml's x86 build quantizes them for the legacy weight types (Q8_0/Q8_1):
// d = amax / 127 and q = round-to-nearest-even(x · 127 / amax), d stored as f16. Each
// block becomes Q8_WORDS words: the 32 quants packed four to a word (little-endian i8,
// the operand of dot4I8Packed), d (f32 bits of the f16 value), s = f16(d · Σq) with d
// unrounded (Q8_1's sum, for the weight types with a minimum), and Σq as an i32 (for the
// nibble types' offset). One thread per block. (WGSL lets a device divide within 2.5 ulp:
// off lavapipe a quant may then differ by one from the CPU's.)
struct P {
    n_blocks: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> XQ: array<u32>;

const Q8_WORDS: u32 = 11u;

fn f16r(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let g = (wid.x + wid.y * nwg.x) * 64u + li;
    if (g >= p.n_blocks) {
        return;
    }
    let x0 = g * 32u;
    var amax = 0.0;
    for (var l = 0u; l < 32u; l++) {
        amax = max(amax, abs(X[x0 + l]));
    }
    let d = amax / 127.0;
    let id = select(0.0, 127.0 / amax, amax != 0.0);
    var sum = 0i;
    for (var k = 0u; k < 8u; k++) {
        var q: vec4<i32>;
        for (var j = 0u; j < 4u; j++) {
            q[j] = i32(round(X[x0 + 4u * k + j] * id));
            sum += q[j];
        }
        XQ[g * Q8_WORDS + k] = pack4xI8(q);
    }
    let d16 = f16r(d);
    XQ[g * Q8_WORDS + 8u] = bitcast<u32>(d16);
    XQ[g * Q8_WORDS + 9u] = bitcast<u32>(f16r(d * f32(sum)));
    XQ[g * Q8_WORDS + 10u] = bitcast<u32>(sum);
}
