//! Time per call of the elementwise ops, dispatched (SIMD) versus their scalar twins.
//! `cargo run --release -p jikji-kernels --example ops_speed`

use std::hint::black_box;
use std::time::Instant;

use jikji_kernels::ops::{self, scalar};

fn time(label: &str, iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / iters as f64;
    println!("{label:<34} {us:9.3} µs");
    us
}

fn main() {
    println!("ops ISA: {:?}", ops::isa());
    let n = 2048;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2000) as f32 / 100.0 - 10.0).collect();
    let w: Vec<f32> = (0..n).map(|i| 1.0 + (i % 13) as f32 * 0.01).collect();
    let mut out = vec![0.0f32; n];
    let it = 20_000;

    let a = time("rms_norm_weighted 2048 (simd)", it, || ops::rms_norm_weighted(black_box(&x), &w, 1e-6, &mut out).unwrap());
    let b = time("rms_norm_weighted 2048 (scalar)", it, || scalar::rms_norm_weighted(black_box(&x), &w, 1e-6, &mut out));
    println!("  speed-up {:.1}x", b / a);

    let a = time("geglu_inplace 2048 (simd)", it, || {
        out.copy_from_slice(&x);
        ops::geglu_inplace(&mut out, &w).unwrap()
    });
    let b = time("geglu_inplace 2048 (scalar)", it, || {
        out.copy_from_slice(&x);
        scalar::geglu_inplace(&mut out, &w)
    });
    println!("  speed-up {:.1}x", b / a);

    let a = time("swiglu_ggml_inplace 2048 (simd)", it, || {
        out.copy_from_slice(&x);
        ops::swiglu_ggml_inplace(&mut out, &w).unwrap()
    });
    let b = time("swiglu_ggml_inplace 2048 (scalar)", it, || {
        out.copy_from_slice(&x);
        scalar::swiglu_ggml_inplace(&mut out, &w)
    });
    println!("  speed-up {:.1}x", b / a);

    let a = time("softmax 2048 (dispatched)", it, || {
        out.copy_from_slice(&x);
        ops::softmax_inplace(&mut out)
    });
    let b = time("softmax 2048 (scalar)", it, || {
        out.copy_from_slice(&x);
        scalar::softmax_inplace(&mut out)
    });
    println!("  speed-up {:.1}x", b / a);

    let (heads, hd) = (9, 64);
    let mut q: Vec<f32> = (0..heads * hd).map(|i| i as f32 * 0.001).collect();
    let p = ops::RopeParams::new(ops::RopeMode::Neox, 64, 10000.0);
    let a = time("rope 9x64 neox (dispatched)", it, || ops::rope(&mut q, 1, heads, hd, &[77], &p).unwrap());
    let b = time("rope 9x64 neox (scalar)", it, || scalar::rope(&mut q, heads, hd, &[77], &p));
    println!("  speed-up {:.1}x", b / a);
}
