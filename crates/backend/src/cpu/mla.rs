//! The CPU backend's multi-head latent attention (DeepSeek-AI 2024, "DeepSeek-V2", §2.1),
//! with the latent cache and the absorbed-weight path, as llama.cpp runs MLA files.
//!
//! Per token, with `x` normalised:
//! - `q = wq · x` or, low-rank, `q = wq_b · rmsnorm(wq_a · x)`: per head `[nope | rope]`;
//! - `kv_a_mqa · x = [c | k_pe]`: the latent `c` (`kv_lora_rank`) and one rope key `k_pe`
//!   (`n_rot`) shared by all heads; `c` is RMS-normed, `k_pe` and each head's `q_pe` are
//!   rotated;
//! - the cache stores only `[c | k_pe]` per token (`kv_lora_rank + n_rot` values per layer,
//!   against `n_head · (head_dim_k + head_dim_v)` for the same model's plain cache);
//! - absorbed decoding: `k_nope = k_b · c` and `v = v_b · c` are never formed. Each head's
//!   query is moved into latent space instead, `q_lat = k_bᵀ-applied q_nope` (`attn_k_b`
//!   per head is `[kv_lora_rank, nope]`), so `score_j = (q_lat · c_j + q_pe · k_pe_j) ·
//!   kq_scale`; the softmax-weighted sum of latents `Σ p_j c_j` then goes through the
//!   head's `attn_v_b` (`[head_dim_v, kv_lora_rank]`) to give the head's output.
//!   Attention is thus multi-query over one `kv_lora_rank + n_rot` wide key whose first
//!   `kv_lora_rank` values are also the value.
//!
//! Files whose MLA weights are the older combined `attn_kv_b` (`[n_head · (nope + dv),
//! kv_lora_rank]`) are split at load: the value rows become per-head row slices of the file
//! tensor; the key rows (which the absorbed path applies transposed) are dequantized to f32
//! once.
//!
//! With an f16 cache the latent and rope key are stored rounded to f16 and, as ggml does for
//! an f16 `mul_mat`, the queries and softmax weights are rounded to f16 before their dots.

use super::kv::{read_f16_bits, write_f16_bits};
use super::{linear, rope, CpuBackend};
use crate::trace::trace;
use crate::{BackendError, KAbsorb, Kv, KvType, MlaAttend, MlaShape, Rope};
use jikji_kernels::lanes::dot16_rows;
use jikji_kernels::ops::rms_norm_weighted_inplace;
use jikji_kernels::pool::parallel_for;
use std::sync::Mutex;

/// MLA for `q` (`[n_tokens, n_head * dk]`) and `ckv` (`[n_tokens, kv_lora + rope]`), rows at
/// `positions`: stores `[rmsnorm(c) | rope(k_pe)]` in layer `il` of `kv` (keys only; MLA has
/// no value cache), attends with absorbed queries and returns the per-head outputs
/// `[n_tokens, n_head * dv]`, before `wo`.
#[allow(clippy::too_many_arguments)]
pub(super) fn mla_attention(
    kv: &mut Kv<CpuBackend>,
    il: usize,
    m: &MlaAttend<CpuBackend>,
    q: &[f32],
    ckv: &[f32],
    positions: &[usize],
    inv: bool,
) -> Result<Vec<f32>, BackendError> {
    let s = &m.shape;
    let n_tokens = positions.len();
    let (nh, dk, lora, nr) = (s.n_head, s.dk(), s.kv_lora, s.rope);
    if q.len() != n_tokens * nh * dk || ckv.len() != n_tokens * s.cache_width() {
        return Err(BackendError::Shape(format!("mla: q {} / ckv {} values for {n_tokens} rows", q.len(), ckv.len())));
    }
    let w = s.cache_width();
    // Latent rows for the cache: [c normed | k_pe roped].
    let mut c = vec![0.0f32; n_tokens * lora]; // [n_tokens, kv_lora]
    let mut k_pe = vec![0.0f32; n_tokens * nr]; // [n_tokens, rope]
    for t in 0..n_tokens {
        c[t * lora..(t + 1) * lora].copy_from_slice(&ckv[t * w..t * w + lora]);
        k_pe[t * nr..(t + 1) * nr].copy_from_slice(&ckv[t * w + lora..(t + 1) * w]);
    }
    rms_norm_weighted_inplace(&mut c, &m.kv_a_norm, s.rms_eps)?;
    rope::apply(&Rope::Yarn(m.rope), &mut k_pe, nr, positions)?;
    trace("kv_cmpr", Some(il), &c);
    trace("k_pe", Some(il), &k_pe);
    let mut rows = vec![0.0f32; n_tokens * w]; // [n_tokens, kv_lora + rope]
    for t in 0..n_tokens {
        rows[t * w..t * w + lora].copy_from_slice(&c[t * lora..(t + 1) * lora]);
        rows[t * w + lora..(t + 1) * w].copy_from_slice(&k_pe[t * nr..(t + 1) * nr]);
    }

    // Queries: q_pe rotated, q_nope absorbed into latent space → [n_tokens, n_head, w].
    let mut q_pe = vec![0.0f32; n_tokens * nh * nr]; // [n_tokens, n_head, rope]
    for (t, qt) in q.chunks_exact(nh * dk).enumerate() {
        for h in 0..nh {
            q_pe[(t * nh + h) * nr..][..nr].copy_from_slice(&qt[h * dk + s.nope..(h + 1) * dk]);
        }
    }
    rope::apply(&Rope::Yarn(m.rope), &mut q_pe, nr, positions)?;
    let mut q_full = vec![0.0f32; n_tokens * nh * w]; // [n_tokens, n_head, kv_lora + rope]
    for h in 0..nh {
        let mut qn = Vec::with_capacity(n_tokens * s.nope); // [n_tokens, nope]
        for t in 0..n_tokens {
            qn.extend_from_slice(&q[t * nh * dk + h * dk..][..s.nope]);
        }
        let q_lat: Vec<f32> = match &m.k_absorb {
            KAbsorb::PerHead(kb) => linear::matmul(&kb[h], &qn, n_tokens, inv)?, // [n_tokens, kv_lora]
            KAbsorb::Transposed(wk) => {
                let wk = &wk[h]; // [nope, kv_lora]
                let mut out = vec![0.0f32; n_tokens * lora];
                for (qr, o) in qn.chunks_exact(s.nope).zip(out.chunks_exact_mut(lora)) {
                    for (cidx, &qv) in qr.iter().enumerate() {
                        let wr = &wk[cidx * lora..(cidx + 1) * lora];
                        o.iter_mut().zip(wr).for_each(|(a, b)| *a += qv * b);
                    }
                }
                out
            }
        };
        for t in 0..n_tokens {
            let dst = &mut q_full[(t * nh + h) * w..][..w];
            dst[..lora].copy_from_slice(&q_lat[t * lora..(t + 1) * lora]);
            dst[lora..].copy_from_slice(&q_pe[(t * nh + h) * nr..][..nr]);
        }
    }
    trace("q_absorbed", Some(il), &q_full);

    // Store the latent rows, then attend per sequence over its visible rows.
    let mut lat = vec![0.0f32; n_tokens * nh * lora]; // [n_tokens, n_head, kv_lora]
    match kv {
        Kv::Contiguous { cache, pos0 } => {
            let pos0 = *pos0;
            let f16_math = cache.ty == KvType::F16;
            let layer = &mut cache.layers[il];
            layer.k.write(pos0 * w, &rows);
            let mut visible = vec![0.0f32; (pos0 + n_tokens) * w]; // [n_kv, w]
            layer.k.read(0, &mut visible);
            attend_latent(s, &q_full, &visible, pos0, n_tokens, f16_math, &mut lat);
        }
        Kv::Paged { pool: kv, seqs } => {
            let mut row = 0;
            for sq in seqs.iter() {
                for pos in sq.pos0..sq.pos0 + sq.n_tokens {
                    let r = kv.row(sq.blocks, pos);
                    write_f16_bits(&mut kv.layers[il].k, r * w, &rows[row * w..(row + 1) * w]);
                    row += 1;
                }
            }
            let mut row0 = 0;
            for sq in seqs.iter() {
                let n_kv = sq.pos0 + sq.n_tokens;
                let mut visible = vec![0.0f32; n_kv * w]; // [n_kv, w]
                for (j, dst) in visible.chunks_exact_mut(w).enumerate() {
                    read_f16_bits(&kv.layers[il].k, kv.row(sq.blocks, j) * w, dst);
                }
                let qs = &q_full[row0 * nh * w..(row0 + sq.n_tokens) * nh * w];
                let out = &mut lat[row0 * nh * lora..(row0 + sq.n_tokens) * nh * lora];
                attend_latent(s, qs, &visible, sq.pos0, sq.n_tokens, true, out);
                row0 += sq.n_tokens;
            }
        }
        Kv::Shared { .. } => return Err(BackendError::Device("multi-head latent attention has no shared-prefix steps".into())),
    }
    // Per head: latent context through v_b → [n_tokens, n_head * dv].
    let mut ctx = vec![0.0f32; n_tokens * nh * s.dv];
    for h in 0..nh {
        let mut lh = Vec::with_capacity(n_tokens * lora); // [n_tokens, kv_lora]
        for t in 0..n_tokens {
            lh.extend_from_slice(&lat[(t * nh + h) * lora..][..lora]);
        }
        let v = linear::matmul(&m.v_b[h], &lh, n_tokens, inv)?; // [n_tokens, dv]
        for t in 0..n_tokens {
            ctx[t * nh * s.dv + h * s.dv..][..s.dv].copy_from_slice(&v[t * s.dv..(t + 1) * s.dv]);
        }
    }
    trace("kqv_out", Some(il), &ctx);
    Ok(ctx)
}

/// `Σ a[i]·b[i]` in 8 lanes (lane `i % 8`), then the lanes in order: a fixed order the
/// compiler vectorises, for widths that are not a multiple of 16.
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ta.iter().zip(tb).enumerate() {
        acc[i] += x * y;
    }
    acc.iter().sum()
}

/// Attention of one sequence's `n_tokens` queries `q` (`[n_tokens, n_head, w]`, positions
/// `pos0..`, `w = kv_lora + rope`) over its cache rows `visible` (`[pos0 + n_tokens, w]`,
/// already rounded to the cache type), writing the softmax-weighted latents
/// `[n_tokens, n_head, kv_lora]` into `out`. One task per head; each output element is
/// summed in position order, so the result does not depend on the batch around it.
fn attend_latent(s: &MlaShape, q: &[f32], visible: &[f32], pos0: usize, n_tokens: usize, f16_math: bool, out: &mut [f32]) {
    let (nh, lora, w) = (s.n_head, s.kv_lora, s.cache_width());
    let n_kv = pos0 + n_tokens;
    let bufs: Vec<Mutex<Vec<f32>>> = (0..nh).map(|_| Mutex::new(Vec::new())).collect();
    parallel_for(nh, &|h| {
        let mut qh = vec![0.0f32; w];
        let mut scores = vec![0.0f32; n_kv];
        let mut o = vec![0.0f32; n_tokens * lora]; // [n_tokens, kv_lora]
        for t in 0..n_tokens {
            let pos = pos0 + t;
            qh.copy_from_slice(&q[(t * nh + h) * w..][..w]);
            if f16_math {
                qh.iter_mut().for_each(|v| *v = half::f16::from_f32(*v).to_f32());
            }
            let sc = &mut scores[..pos + 1];
            if w % 16 == 0 {
                // Every visible key against the query (16-lane FMA order, SIMD); real
                // models' latent widths (512 + 64) take this path.
                dot16_rows(visible, w, &qh, sc);
            } else {
                for (j, sj) in sc.iter_mut().enumerate() {
                    *sj = dot8(&visible[j * w..(j + 1) * w], &qh);
                }
            }
            sc.iter_mut().for_each(|v| *v *= s.kq_scale);
            let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f64;
            for v in sc.iter_mut() {
                *v = (*v - max).exp();
                sum += *v as f64;
            }
            let inv = (1.0 / sum) as f32;
            for v in sc.iter_mut() {
                *v *= inv;
                if f16_math {
                    *v = half::f16::from_f32(*v).to_f32();
                }
            }
            let ot = &mut o[t * lora..(t + 1) * lora];
            for (j, &p) in sc.iter().enumerate() {
                let cr = &visible[j * w..j * w + lora];
                ot.iter_mut().zip(cr).for_each(|(a, b)| *a += p * b);
            }
        }
        *bufs[h].lock().unwrap_or_else(|e| e.into_inner()) = o;
    });
    for (h, buf) in bufs.into_iter().enumerate() {
        let o = buf.into_inner().unwrap_or_else(|e| e.into_inner());
        for (t, row) in o.chunks_exact(lora.max(1)).enumerate() {
            out[(t * nh + h) * lora..][..lora].copy_from_slice(row);
        }
    }
}
