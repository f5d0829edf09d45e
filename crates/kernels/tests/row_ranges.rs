//! One token's products computed a row range at a time (`matvec_*_rows`, what decoding's
//! fused q/k/v and gate/up job runs) have the bits of the whole-matrix products.

mod common;

use common::Rng;
use jikji_kernels::{
    matmul_kquant_batch_invariant, matmul_peer_kquant, matmul_quantized, matvec_peer_kquant_rows, matvec_quantized_rows, quantize_activations,
    quantize_row, GgmlType, WeightView,
};

const ROWS: usize = 40;
const COLS: usize = 512;
/// Uneven cuts, an empty range included.
const CUTS: [usize; 5] = [0, 7, 7, 23, ROWS];

fn weights(ty: GgmlType, rng: &mut Rng) -> Vec<u8> {
    let rb = ty.row_bytes(COLS as u64).expect("whole blocks") as usize;
    let mut w = vec![0u8; rb * ROWS];
    for dst in w.chunks_exact_mut(rb) {
        quantize_row(ty, &rng.vec(COLS, 1.0), dst).expect("quantize");
    }
    w
}

fn by_ranges(f: impl Fn(std::ops::Range<usize>, &mut [f32])) -> Vec<f32> {
    let mut y = vec![f32::NAN; ROWS];
    for c in CUTS.windows(2) {
        f(c[0]..c[1], &mut y[c[0]..c[1]]);
    }
    y
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn row_ranges_of_one_token_equal_the_whole_matmul_bit_for_bit() {
    let mut rng = Rng::new(42);
    let x = rng.vec(COLS, 1.0);
    for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::F16, GgmlType::F32] {
        let w = weights(ty, &mut rng);
        let view = WeightView { ty, data: &w, rows: ROWS, cols: COLS };
        let xq = quantize_activations(ty, &x, COLS, 1).expect("activations");
        let mut whole = vec![0.0f32; ROWS];
        matmul_quantized(&view, &xq, 1, &mut whole).expect("matmul");
        let parts = by_ranges(|r, y| matvec_quantized_rows(&view, &xq, r, y).expect("rows"));
        assert_eq!(bits(&parts), bits(&whole), "{ty}");
    }
}

#[test]
fn peer_order_row_ranges_of_one_token_equal_both_kquant_matmuls() {
    let mut rng = Rng::new(7);
    let x = rng.vec(COLS, 1.0);
    for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
        let w = weights(ty, &mut rng);
        let view = WeightView { ty, data: &w, rows: ROWS, cols: COLS };
        let xq = quantize_activations(ty, &x, COLS, 1).expect("activations");
        let mut peer = vec![0.0f32; ROWS];
        matmul_peer_kquant(&view, &xq, 1, &mut peer).expect("peer");
        let parts = by_ranges(|r, y| matvec_peer_kquant_rows(&view, &xq, r, y, false).expect("rows"));
        assert_eq!(bits(&parts), bits(&peer), "{ty} peer order");
        let mut inv = vec![0.0f32; ROWS];
        matmul_kquant_batch_invariant(&view, &xq, 1, &mut inv).expect("invariant");
        let parts = by_ranges(|r, y| matvec_peer_kquant_rows(&view, &xq, r, y, true).expect("rows"));
        assert_eq!(bits(&parts), bits(&inv), "{ty} batch-invariant order");
    }
}

#[test]
fn row_ranges_reject_bad_sizes_with_errors() {
    let mut rng = Rng::new(3);
    let ty = GgmlType::Q8_0;
    let w = weights(ty, &mut rng);
    let view = WeightView { ty, data: &w, rows: ROWS, cols: COLS };
    let xq = quantize_activations(ty, &rng.vec(COLS, 1.0), COLS, 1).expect("activations");
    let mut y = vec![0.0f32; 5];
    assert!(matvec_quantized_rows(&view, &xq, 38..43, &mut y).is_err(), "rows past the end");
    assert!(matvec_quantized_rows(&view, &xq, 0..4, &mut y).is_err(), "output length differs");
    assert!(matvec_quantized_rows(&view, &xq[1..], 0..5, &mut y).is_err(), "short activations");
    assert!(matvec_peer_kquant_rows(&view, &xq, 0..5, &mut y, false).is_err(), "not a K-quant");
}
