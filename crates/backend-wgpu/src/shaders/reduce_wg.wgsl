// Sum of TOK partial sums over the LANES lanes of a workgroup in workgroup memory; lane t
// (t < TOK) gets the total of token t.
var<workgroup> red: array<f32, 512>;

fn reduce(acc: ptr<function, array<f32, 8>>, lane: u32) -> f32 {
    for (var t = 0u; t < TOK; t++) {
        red[lane * TOK + t] = (*acc)[t];
    }
    workgroupBarrier();
    for (var s = LANES / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            for (var t = 0u; t < TOK; t++) {
                red[lane * TOK + t] += red[(lane + s) * TOK + t];
            }
        }
        workgroupBarrier();
    }
    return red[min(lane, TOK - 1u)];
}
