// Sum of TOK partial sums over the LANES lanes of a workgroup: subgroupAdd within each
// subgroup (any size: 8 on lavapipe, 32 on NVIDIA, 64 on AMD), then the subgroups' totals
// through workgroup memory. Only the first lane of each subgroup contributes its total
// (the others write 0), so nothing assumes how lanes are grouped into subgroups. Lane t
// (t < TOK) gets the total of token t.
var<workgroup> red: array<f32, 512>;

fn reduce(acc: ptr<function, array<f32, 8>>, lane: u32, sg_lane: u32) -> f32 {
    for (var t = 0u; t < TOK; t++) {
        let v = subgroupAdd((*acc)[t]);
        red[lane * TOK + t] = select(0.0, v, sg_lane == 0u);
    }
    workgroupBarrier();
    var tot = 0.0;
    let t = min(lane, TOK - 1u);
    for (var i = 0u; i < LANES; i++) {
        tot += red[i * TOK + t];
    }
    return tot;
}
