// Attention of one query row and head per workgroup over the keys it sees, flash-style:
// the visible positions lo..=pos are taken in chunks of LANES keys (one key per lane:
// score, then the chunk's max and sum in workgroup memory), the running maximum rescales
// the output accumulators (online softmax), and lanes own output dims (d = lane + LANES k).
// No score buffer: memory is independent of the context.
//
// Position j of the row's sequence lives at cache slot `tbl[off + j / bs] * bs + j % bs`
// (paged pool) or `j` (contiguous cache, paged = 0). K and V are one layer's
// `[slots, n_head_kv * dk]` and `[slots, n_head_kv * dv]` buffers, f16 packed two to a
// word (`kv16`, the f16 caches) or f32 (`bitcast`), or, for latent
// attention (`vstride` ≠ 0), V is the K buffer itself: a value is the first `dv` values of
// its key row, `vstride` apart.
struct P {
    n_head: u32,
    n_head_kv: u32,
    dk: u32,
    dv: u32,
    kq_scale: f32,
    bs: u32,
    paged: u32,
    vstride: u32,
    kv16: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<u32>;
@group(0) @binding(3) var<storage, read> V: array<u32>;
// Per row: position, first visible position, offset of its block table in `tbl`.
@group(0) @binding(4) var<storage, read> rinfo: array<u32>;
@group(0) @binding(5) var<storage, read> tbl: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

const LANES: u32 = 64u;
const MAX_DK: u32 = 1024u;
const DV_PER_LANE: u32 = 8u;

var<workgroup> qs: array<f32, MAX_DK>;
var<workgroup> pr: array<f32, LANES>;
var<workgroup> red: array<f32, LANES>;
var<workgroup> bounds: vec2<u32>;

// Element `i` of the key / value buffer.
fn kval(i: u32) -> f32 {
    if (p.kv16 != 0u) {
        return unpack2x16float(K[i >> 1u])[i & 1u];
    }
    return bitcast<f32>(K[i]);
}

fn vval(i: u32) -> f32 {
    if (p.kv16 != 0u) {
        return unpack2x16float(V[i >> 1u])[i & 1u];
    }
    return bitcast<f32>(V[i]);
}

fn slot(j: u32, off: u32) -> u32 {
    if (p.paged != 0u) {
        return tbl[off + j / p.bs] * p.bs + j % p.bs;
    }
    return j;
}

fn wg_max(v: f32, li: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var k = LANES / 2u; k > 0u; k >>= 1u) {
        if (li < k) {
            red[li] = max(red[li], red[li + k]);
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn wg_sum(v: f32, li: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var k = LANES / 2u; k > 0u; k >>= 1u) {
        if (li < k) {
            red[li] += red[li + k];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = wid.x;
    let h = wid.y;
    let kvh = h / (p.n_head / p.n_head_kv);
    let qo = (r * p.n_head + h) * p.dk;
    for (var i = li; i < p.dk; i += LANES) {
        qs[i] = Q[qo + i];
    }
    if (li == 0u) {
        bounds = vec2<u32>(rinfo[3u * r + 1u], rinfo[3u * r]);
    }
    let b = workgroupUniformLoad(&bounds);
    let off = rinfo[3u * r + 2u];
    let kw = p.n_head_kv * p.dk;
    let vw = select(p.n_head_kv * p.dv, p.vstride, p.vstride != 0u);
    var acc: array<f32, DV_PER_LANE>;
    var m = -3.0e38;
    var l = 0.0;
    for (var c0 = b.x; c0 <= b.y; c0 += LANES) {
        let j = c0 + li;
        let valid = j <= b.y;
        var s = -3.0e38;
        if (valid) {
            let ko = slot(j, off) * kw + kvh * p.dk;
            var d = 0.0;
            for (var i = 0u; i < p.dk; i++) {
                d += qs[i] * kval(ko + i);
            }
            s = d * p.kq_scale;
        }
        let m_new = max(m, wg_max(s, li));
        let corr = exp(m - m_new);
        let e = select(0.0, exp(s - m_new), valid);
        pr[li] = e;
        l = l * corr + wg_sum(e, li);
        m = m_new;
        let n = min(LANES, b.y - c0 + 1u);
        for (var k = 0u; k < DV_PER_LANE; k++) {
            let d = li + LANES * k;
            if (d < p.dv) {
                var a = acc[k] * corr;
                for (var jj = 0u; jj < n; jj++) {
                    a += pr[jj] * vval(slot(c0 + jj, off) * vw + kvh * p.dv + d);
                }
                acc[k] = a;
            }
        }
        workgroupBarrier();
    }
    let inv = 1.0 / l;
    let oo = (r * p.n_head + h) * p.dv;
    for (var k = 0u; k < DV_PER_LANE; k++) {
        let d = li + LANES * k;
        if (d < p.dv) {
            out[oo + d] = acc[k] * inv;
        }
    }
}
