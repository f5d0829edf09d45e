//! The CPU backend's causal self-attention with grouped-query heads over the KV cache.
//!
//! The caller has already projected, normalised and rotated `q`/`k` and written this
//! batch's keys and values into the cache rows `pos0 .. pos0 + n_tokens`. Query head `h`
//! reads kv head `h / (n_head / n_head_kv)`. Token `t` (position `pos0 + t`) sees cache rows
//! `0 ..= pos0 + t`, further limited to the last `window` positions on sliding-window
//! layers (llama.cpp's standard SWA: key `j` is hidden when `pos - j >= window`).
//!
//! Numerics reproduce llama.cpp's non-flash-attention CPU path on x86 (AVX-512 build), where
//! the reference fixtures come from; the small models amplify last-bit differences here
//! into visible logit differences, so the operation order is part of the contract:
//! - scores `kq = k16 · q16`: with an f16 cache the queries are rounded to f16 (ggml converts
//!   the f32 operand of an f16 `mul_mat`); a batch (`n_tokens ≥ 2`) goes through llamafile's
//!   `tinyBLAS` (16 f32 lanes of FMAs over the head dim, then a tree reduction), a single
//!   token through `ggml_vec_dot_f16` (4 × 16 lanes over steps of 64, tree, f64 tail);
//! - softmax `ggml_soft_max_ext`: scale, mask, max, `exp` by ggml's AVX-512 polynomial
//!   (`ggml_v_expf`) in chunks of 16 positions summed per chunk into an f64 total, then
//!   multiplied by `(1 / sum) as f32`;
//! - output `kqv = v16 · p16`: probabilities rounded to f16, then the same two dot orders
//!   over the positions.
//!
//! An f32 cache skips the f16 roundings (a debugging aid, not a peer configuration).

use super::peer::reduce16;
use jikji_kernels::lanes::{dot16_tile, fma_lanes, fma_scalar_into, v_expf_slice};
use jikji_kernels::pool::parallel_for;
use std::sync::Mutex;
use super::kv::{read_f16_bits, CpuPool, LayerKv};
use crate::{AttnShape, SeqSpan};

/// Rounds each value through f16.
fn round_f16(x: &mut [f32]) {
    jikji_kernels::ops::round_f16_inplace(x);
}

/// Dot product in the order of one of ggml's x86 kernels. `terms` yields `(index, a, b)`
/// with increasing indices; absent indices are zero terms (which do not change the sums).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DotOrder {
    /// llamafile `tinyBLAS` (batch): lane `i % 16`, FMA, one tree reduction. (The batch
    /// path runs it as tiles, [`attention_tiled`]; this one-dot form is its test reference.)
    #[cfg(test)]
    Gemm,
    /// `ggml_vec_dot_f16` (one token): register `(i % 64) / 16`, lane `i % 16`, FMA;
    /// registers 0+2, 1+3, then 0+1, tree reduction to f64; indices past the last
    /// multiple of 64 (`tail_from`) added in f64.
    VecDot { tail_from: usize },
}

/// Σ `a[k]·b[k]` for terms at indices `first + k`, in `order` (the lanes are the absolute
/// index modulo 16 or 64, so a sum that starts at `first` matches one over zero-padded
/// terms from a multiple of 16). The lane FMAs run in `jikji_kernels::lanes` (SIMD, same
/// bits as one at a time).
fn dot(order: DotOrder, a: &[f32], b: &[f32], first: usize) -> f32 {
    let n = a.len().min(b.len());
    match order {
        #[cfg(test)]
        DotOrder::Gemm => {
            let mut lanes = [0.0f32; 16];
            fma_lanes(&a[..n], &b[..n], first, &mut lanes);
            reduce16(&lanes)
        }
        DotOrder::VecDot { tail_from } => {
            let split = tail_from.saturating_sub(first).min(n);
            let mut regs = [0.0f32; 64]; // register r lane l at 16 r + l
            fma_lanes(&a[..split], &b[..split], first, &mut regs);
            let mut tail = 0.0f64;
            for (&x, &y) in a[split..n].iter().zip(&b[split..n]) {
                tail += (x * y) as f64;
            }
            let mut x0 = [0.0f32; 16];
            for l in 0..16 {
                let a = regs[l] + regs[32 + l];
                let b = regs[16 + l] + regs[48 + l];
                x0[l] = a + b;
            }
            (reduce16(&x0) as f64 + tail) as f32
        }
    }
}

/// Softmax over the visible scores `s` (positions `lo..lo + s.len()`), in place.
fn softmax_ggml(s: &mut [f32], lo: usize) {
    softmax_ranges(s, lo, &[(lo, lo + s.len())]);
}

/// Softmax over the cells of `ranges` (`[a, b)`, ascending, disjoint) of `row`, whose entry
/// `i` is cell `base + i`, in place; entries outside the ranges are left alone (the
/// callers zero them). ggml's order over a masked row: max over the visible scores, `exp`
/// of each minus the max, chunks of 16 cells (by absolute cell) summed into an f64 total
/// in cell order, then multiplied by `(1 / sum) as f32`. Hidden cells are exact zeros in
/// ggml's sums, so skipping them changes no bit.
fn softmax_ranges(row: &mut [f32], base: usize, ranges: &[(usize, usize)]) {
    let span = |&(a, b): &(usize, usize)| a - base..b - base;
    let mut max = f32::NEG_INFINITY;
    for r in ranges {
        max = row[span(r)].iter().copied().fold(max, f32::max);
    }
    if max == f32::NEG_INFINITY {
        for r in ranges {
            row[span(r)].fill(0.0);
        }
        return;
    }
    for r in ranges {
        let vis = &mut row[span(r)];
        for v in vis.iter_mut() {
            *v -= max;
        }
        v_expf_slice(vis);
    }
    let mut sum = 0.0f64;
    let mut chunk = [0.0f32; 16];
    let mut current = usize::MAX;
    for r in ranges {
        for (cell, &v) in (r.0..r.1).zip(&row[span(r)]) {
            if cell / 16 != current {
                if current != usize::MAX {
                    sum += reduce16(&chunk) as f64;
                }
                chunk = [0.0; 16];
                current = cell / 16;
            }
            chunk[cell % 16] = v;
        }
    }
    sum += reduce16(&chunk) as f64;
    let inv = (1.0 / sum) as f32;
    for r in ranges {
        for v in row[span(r)].iter_mut() {
            *v *= inv;
        }
    }
}

/// The cells a row sees, `[a, b)` ascending; empty ranges are `(b, b)`.
type Visible = [(usize, usize); 2];

/// Non-empty ranges of a row's [`Visible`].
fn ranges(v: &Visible) -> impl Iterator<Item = (usize, usize)> + '_ {
    v.iter().copied().filter(|r| r.0 < r.1)
}

/// Writes the attention output `[n_tokens, n_head * head_dim_v]` into `out`.
///
/// `q`: `[n_tokens, n_head * head_dim_k]`. `f16_math` mirrors an f16 cache: queries and
/// softmax weights are rounded to f16 before their dot products, as ggml does.
pub fn attention(
    s: &AttnShape,
    q: &[f32],
    layer: &LayerKv,
    pos0: usize,
    n_tokens: usize,
    f16_math: bool,
    out: &mut [f32],
) {
    let vis: Vec<Visible> = (pos0..pos0 + n_tokens).map(|p| [(p, p), (s.first_visible(p), p + 1)]).collect();
    attention_visible(s, q, layer, &vis, f16_math, out);
}

/// [`attention`] for the rows of a shared-prefix step: row `t` at position `positions[t]`
/// sees the cells of `views[t]` (its keys and values already written to `views[t].cell`).
/// The operation orders are those of llama.cpp over its masked unified cache, so a row's
/// output has the bits it has there when its cells sit at the same offsets modulo 16.
pub fn attention_shared(s: &AttnShape, q: &[f32], layer: &LayerKv, positions: &[usize], views: &[crate::RowView], f16_math: bool, out: &mut [f32]) {
    let vis: Vec<Visible> = positions.iter().zip(views).map(|(&p, v)| v.visible(p, s.first_visible(p))).collect();
    attention_visible(s, q, layer, &vis, f16_math, out);
}

/// Rows seeing the cells `vis[t]`: one row takes `ggml_vec_dot_f16`'s order, a batch the
/// tiled `tinyBLAS` order, as ggml picks by the batch size.
fn attention_visible(s: &AttnShape, q: &[f32], layer: &LayerKv, vis: &[Visible], f16_math: bool, out: &mut [f32]) {
    let n_kv = vis.iter().map(|v| v[1].1).max().unwrap_or(0);
    let kw = s.n_head_kv * s.head_dim_k;
    let vw = s.n_head_kv * s.head_dim_v;
    if vis.len() == 1 {
        attention_one(s, q, layer, &vis[0], f16_math, out);
        return;
    }
    // f32 copies of the visible cache rows (already rounded to the cache type).
    let mut kf = vec![0.0f32; n_kv * kw]; // [n_kv, n_head_kv * head_dim_k]
    let mut vf = vec![0.0f32; n_kv * vw]; // [n_kv, n_head_kv * head_dim_v]
    layer.k.read(0, &mut kf);
    layer.v.read(0, &mut vf);
    attention_tiled(s, q, &kf, &vf, vis, f16_math, out);
}

/// One token at position `pos` (decoding), in `ggml_vec_dot_f16`'s order for both dots.
///
/// Each head's task reads the visible cache rows `lo..=pos` of its kv head straight from
/// the cache (converting one row at a time), so nothing is copied up front on the calling
/// thread. The weighted value sum keeps the 64 lanes (position mod 64) of every value
/// dimension as 64 accumulator rows of `dv` values and adds one cache row per position to
/// the row of its lane (`acc[j % 64] = fma(v_j, p_j, acc[j % 64])`): the same FMAs, in the
/// same order per (dimension, lane), as one dot per dimension over a transposed V.
fn attention_one(s: &AttnShape, q: &[f32], layer: &LayerKv, vis: &Visible, f16_math: bool, out: &mut [f32]) {
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let kw = s.n_head_kv * dk;
    let vw = s.n_head_kv * dv;
    let group = s.n_head / s.n_head_kv;
    let rs: Vec<(usize, usize)> = ranges(vis).collect();
    // Where each range's scores sit in the head's back-to-back score vector.
    let mut at = 0;
    let packed: Vec<(usize, usize)> = rs
        .iter()
        .map(|&(a, b)| {
            let r = (at, at + b - a);
            at += b - a;
            r
        })
        .collect();
    let kq_order = DotOrder::VecDot { tail_from: dk - dk % 64 };
    let bufs: Vec<Mutex<Vec<f32>>> = (0..s.n_head).map(|_| Mutex::new(Vec::new())).collect();
    parallel_for(s.n_head, &|h| {
        let kvh = h / group;
        let mut qh = q[h * dk..][..dk].to_vec();
        if f16_math {
            round_f16(&mut qh);
        }
        let mut row = vec![0.0f32; dk.max(dv)];
        let cells = || rs.iter().flat_map(|&(a, b)| a..b);
        let mut sc: Vec<f32> = cells()
            .map(|j| {
                layer.k.read(j * kw + kvh * dk, &mut row[..dk]);
                dot(kq_order, &row[..dk], &qh, 0) * s.kq_scale
            })
            .collect();
        softmax_packed(&mut sc, &rs, &packed);
        if f16_math {
            round_f16(&mut sc);
        }
        let mut acc = vec![0.0f32; 64 * dv]; // [lane = cell mod 64, dv]
        for (j, &p) in cells().zip(&sc) {
            layer.v.read(j * vw + kvh * dv, &mut row[..dv]);
            fma_scalar_into(&row[..dv], p, &mut acc[(j % 64) * dv..][..dv]);
        }
        // Registers 0+2, 1+3, then 0+1, tree reduction (no tail: ggml pads the positions).
        let o: Vec<f32> = (0..dv)
            .map(|d| {
                let r = |reg: usize, l: usize| acc[(16 * reg + l) * dv + d];
                let mut x0 = [0.0f32; 16];
                for (l, x) in x0.iter_mut().enumerate() {
                    *x = (r(0, l) + r(2, l)) + (r(1, l) + r(3, l));
                }
                (reduce16(&x0) as f64 + 0.0) as f32
            })
            .collect();
        *bufs[h].lock().unwrap_or_else(|e| e.into_inner()) = o;
    });
    for (h, buf) in bufs.into_iter().enumerate() {
        let buf = buf.into_inner().unwrap_or_else(|e| e.into_inner());
        out[h * dv..][..dv].copy_from_slice(&buf);
    }
}

/// [`softmax_ranges`] over scores stored back to back: the cells `rs[i]` are at
/// `sc[packed[i].0..packed[i].1]`.
fn softmax_packed(sc: &mut [f32], rs: &[(usize, usize)], packed: &[(usize, usize)]) {
    match rs {
        [] => {}
        [(a, _)] => softmax_ranges(sc, *a, rs),
        _ => {
            // Lay the scores out over the cells they cover (gaps unused), then back.
            let (lo, hi) = (rs[0].0, rs[rs.len() - 1].1);
            let mut full = vec![0.0f32; hi - lo];
            for (&(a, b), &(x, y)) in rs.iter().zip(packed) {
                full[a - lo..b - lo].copy_from_slice(&sc[x..y]);
            }
            softmax_ranges(&mut full, lo, rs);
            for (&(a, b), &(x, y)) in rs.iter().zip(packed) {
                sc[x..y].copy_from_slice(&full[a - lo..b - lo]);
            }
        }
    }
}

/// Queries per task of [`attention_tiled`].
const TILE_TOKENS: usize = 32;

/// The batch (`tinyBLAS` order) path of [`attention`]: one pool task per (query head,
/// block of [`TILE_TOKENS`] tokens), largest blocks first. A task computes its block's
/// scores against every key any of its tokens sees as one [`dot16_tile`] (queries × keys
/// over the head dimension), masks and normalises each row over its own visible range,
/// then forms the outputs as a second tile (weights × value columns over positions).
/// The position sum runs over a range widened to multiples of 16 with zero weights outside
/// each row's visible keys, and zero terms leave a lane's FMA chain unchanged (weights and
/// values are finite), so every output has the bits of its own one-row dots.
fn attention_tiled(s: &AttnShape, q: &[f32], kf: &[f32], vf: &[f32], vis: &[Visible], f16_math: bool, out: &mut [f32]) {
    let n_tokens = vis.len();
    let n_kv = vis.iter().map(|v| v[1].1).max().unwrap_or(0);
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let kw = s.n_head_kv * dk;
    let vw = s.n_head_kv * dv;
    let group = s.n_head / s.n_head_kv;
    let n_pad = n_kv.div_ceil(16) * 16;
    // V transposed and zero-padded to whole 16-position groups.
    let mut vt = vec![0.0f32; vw * n_pad]; // [n_head_kv * head_dim_v, n_pad]
    for (j, row) in vf.chunks_exact(vw.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            vt[c * n_pad + j] = v;
        }
    }
    let n_blocks = n_tokens.div_ceil(TILE_TOKENS);
    let n_tasks = s.n_head * n_blocks;
    let bufs: Vec<Mutex<Vec<f32>>> = (0..n_tasks).map(|_| Mutex::new(Vec::new())).collect();
    parallel_for(n_tasks, &|task| {
        let (blk, h) = (n_blocks - 1 - task / s.n_head, task % s.n_head);
        let kvh = h / group;
        let (t0, t1) = (blk * TILE_TOKENS, ((blk + 1) * TILE_TOKENS).min(n_tokens));
        let nt = t1 - t0;
        // Keys seen by any token of the block, and that range widened to 16s.
        let rows = &vis[t0..t1];
        let k0 = rows.iter().flat_map(ranges).map(|r| r.0).min().unwrap_or(0);
        let k1 = rows.iter().flat_map(ranges).map(|r| r.1).max().unwrap_or(k0).max(k0);
        let (ks, ke) = (k0 / 16 * 16, k1.div_ceil(16) * 16);
        let w = ke - ks;
        let mut qb = vec![0.0f32; nt * dk]; // [nt, dk]
        for (t, row) in qb.chunks_exact_mut(dk).enumerate() {
            row.copy_from_slice(&q[(t0 + t) * s.n_head * dk + h * dk..][..dk]);
            if f16_math {
                round_f16(row);
            }
        }
        let mut sc = vec![0.0f32; nt * w]; // [nt, ks..ke]
        dot16_tile(&qb, dk, nt, &kf[k0 * kw + kvh * dk..], kw, k1 - k0, dk, 0, &mut sc[k0 - ks..], w);
        let mut rs: Vec<(usize, usize)> = Vec::with_capacity(2);
        for (row, v) in sc.chunks_exact_mut(w).zip(rows) {
            rs.clear();
            rs.extend(ranges(v));
            // Zero every hidden cell, scale the visible ones.
            let mut at = ks;
            for &(a, b) in &rs {
                row[at - ks..a - ks].fill(0.0);
                for x in row[a - ks..b - ks].iter_mut() {
                    *x *= s.kq_scale;
                }
                at = b;
            }
            row[at - ks..].fill(0.0);
            softmax_ranges(row, ks, &rs);
            if f16_math {
                for &(a, b) in &rs {
                    round_f16(&mut row[a - ks..b - ks]);
                }
            }
        }
        let mut o = vec![0.0f32; nt * dv]; // [nt, dv]
        dot16_tile(&sc, w, nt, &vt[kvh * dv * n_pad + ks..], n_pad, dv, w, ks, &mut o, dv);
        *bufs[task].lock().unwrap_or_else(|e| e.into_inner()) = o;
    });
    for (task, buf) in bufs.into_iter().enumerate() {
        let (blk, h) = (n_blocks - 1 - task / s.n_head, task % s.n_head);
        let buf = buf.into_inner().unwrap_or_else(|e| e.into_inner());
        for (t, row) in buf.chunks_exact(dv.max(1)).enumerate() {
            out[(blk * TILE_TOKENS + t) * s.n_head * dv + h * dv..][..dv].copy_from_slice(row);
        }
    }
}

/// One whole 16-position block of the weighted value sum in a single lane pass:
/// `lanes[d][l] = fma(v[d][l], p[l], lanes[d][l])` for every value dimension `d`, as one
/// `fma_lanes` over the flattened `[dv, 16]` block with `p` repeated per dimension, which
/// performs exactly the per-dimension FMAs (lane `d·16 + l` is dimension `d`, position
/// lane `l`). Returns false (nothing done) for head widths without a wide instance.
#[cfg(test)]
fn wide_block_sum(vb: &[f32], p: &[f32], p_rep: &mut [f32], lanes: &mut [[f32; 16]]) -> bool {
    let dv = lanes.len();
    for chunk in p_rep.chunks_exact_mut(16) {
        chunk.copy_from_slice(p);
    }
    let flat = lanes.as_flattened_mut();
    match dv {
        64 => match <&mut [f32; 1024]>::try_from(flat) {
            Ok(l) => fma_lanes(vb, p_rep, 0, l),
            Err(_) => return false,
        },
        128 => match <&mut [f32; 2048]>::try_from(flat) {
            Ok(l) => fma_lanes(vb, p_rep, 0, l),
            Err(_) => return false,
        },
        _ => return false,
    }
    true
}

/// First row of each sequence in a batch's concatenated rows.
fn row_offsets(seqs: &[SeqSpan]) -> Vec<usize> {
    seqs.iter()
        .scan(0, |acc, sq| {
            let r = *acc;
            *acc += sq.n_tokens;
            Some(r)
        })
        .collect()
}

/// Copies the per-(sequence, kv head) task outputs `[n_tokens, group * dv]` (task order:
/// sequence-major) into `out` `[n_rows, n_head * dv]`.
fn scatter_groups(s: &AttnShape, bufs: Vec<Mutex<Vec<f32>>>, row0: &[usize], out: &mut [f32]) {
    let gw = s.n_head / s.n_head_kv * s.head_dim_v;
    for (task, buf) in bufs.into_iter().enumerate() {
        let (i, kvh) = (task / s.n_head_kv, task % s.n_head_kv);
        let buf = buf.into_inner().unwrap_or_else(|e| e.into_inner());
        for (t, row) in buf.chunks_exact(gw.max(1)).enumerate() {
            out[(row0[i] + t) * s.n_head * s.head_dim_v + kvh * gw..][..gw].copy_from_slice(row);
        }
    }
}

/// Batch-invariant attention over a paged pool, writing `out` `[n_rows, n_head * head_dim_v]`.
///
/// `q` holds the rows of every sequence of `seqs`, concatenated in order
/// (`[n_rows, n_head * head_dim_k]`); each row attends over its own sequence's positions
/// `0..=pos` (or the window), read through the sequence's block table. Unlike
/// [`attention`], every row uses the batch (`tinyBLAS`) dot order whatever the number of
/// rows, so a row's output depends only on its sequence's keys, values and query; the
/// f16 roundings of an f16 cache apply (the pool holds f16).
///
/// One pool task per (sequence, kv head) serves the kv head's whole query group, so each
/// key and value is loaded once for several heads: the task first gathers its kv head's
/// keys (`[positions, dk]`) and values (transposed, `[dv, positions]`, zero past the end)
/// out of the blocks into contiguous f32 runs, then each row's scores are one
/// [`dot16_tile`] (the group's queries × the visible keys) and its weighted sums a second
/// tile (weights × value columns). Lanes are absolute
/// positions modulo 16 and zero weights leave a lane unchanged, so each output has the
/// bits of its own one-dot-at-a-time sum.
pub fn attention_paged(s: &AttnShape, q: &[f32], kv: &CpuPool, il: usize, seqs: &[SeqSpan], out: &mut [f32]) {
    let layer = &kv.layers[il];
    let (bs, kw, vw) = (kv.block_size, kv.k_width, kv.v_width);
    let group = s.n_head / s.n_head_kv;
    let (dk, dv) = (s.head_dim_k, s.head_dim_v);
    let row0 = row_offsets(seqs);
    let n_tasks = seqs.len() * s.n_head_kv;
    // Per task: `[n_tokens, group * dv]` (the group's heads side by side).
    let bufs: Vec<Mutex<Vec<f32>>> = (0..n_tasks).map(|_| Mutex::new(Vec::new())).collect();
    parallel_for(n_tasks, &|task| {
        let (i, kvh) = (task / s.n_head_kv, task % s.n_head_kv);
        let sq = &seqs[i];
        let n_kv = sq.pos0 + sq.n_tokens;
        // Positions any row of the task sees, widened to 16s: ks..ks + w.
        let ks = s.first_visible(sq.pos0) / 16 * 16;
        let w = n_kv.div_ceil(16) * 16 - ks;
        // This kv head's keys `[ks..n_kv, dk]` and values transposed `[dv, ks..ks + w]`
        // (zero past the end), contiguous over positions and converted to f32 once.
        let mut kt = vec![0.0f32; (n_kv - ks) * dk];
        let mut vt = vec![0.0f32; dv * w];
        for bi in ks / bs..n_kv.div_ceil(bs) {
            let (a, b) = ((bi * bs).max(ks), ((bi + 1) * bs).min(n_kv));
            let r0 = sq.blocks[bi] as usize * bs;
            for (j, dst) in (a..b).zip(kt[(a - ks) * dk..(b - ks) * dk].chunks_exact_mut(dk)) {
                read_f16_bits(&layer.k, (r0 + j % bs) * kw + kvh * dk, dst);
            }
            let vb = &layer.v[r0 * vw..][..vw * bs];
            for d in 0..dv {
                let col = (kvh * dv + d) * bs;
                read_f16_bits(vb, col + a - bi * bs, &mut vt[d * w + a - ks..d * w + b - ks]);
            }
        }
        let gw = group * dv;
        let mut qg = vec![0.0f32; group * dk]; // [group, dk]
        let mut sc = vec![0.0f32; group * w]; // [group, ks..ks + w]
        let mut o = vec![0.0f32; sq.n_tokens * gw];
        for t in 0..sq.n_tokens {
            let pos = sq.pos0 + t;
            let lo = s.first_visible(pos);
            // The group's query heads are adjacent in the row.
            qg.copy_from_slice(&q[(row0[i] + t) * s.n_head * dk + kvh * group * dk..][..group * dk]);
            round_f16(&mut qg);
            dot16_tile(&qg, dk, group, &kt[(lo - ks) * dk..], dk, pos + 1 - lo, dk, 0, &mut sc[lo - ks..], w);
            // Weights over lo..=pos, zero elsewhere in the 16-aligned span e0..e1.
            let (e0, e1) = (lo / 16 * 16, (pos + 1).div_ceil(16) * 16);
            for row in sc.chunks_exact_mut(w) {
                row[e0 - ks..lo - ks].fill(0.0);
                row[pos + 1 - ks..e1 - ks].fill(0.0);
                let vis = &mut row[lo - ks..pos + 1 - ks];
                for v in vis.iter_mut() {
                    *v *= s.kq_scale;
                }
                softmax_ggml(vis, lo);
                round_f16(vis);
            }
            dot16_tile(&sc[e0 - ks..], w, group, &vt[e0 - ks..], w, dv, e1 - e0, e0, &mut o[t * gw..], dv);
        }
        *bufs[task].lock().unwrap_or_else(|e| e.into_inner()) = o;
    });
    scatter_groups(s, bufs, &row0, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use jikji_kernels::lanes::dot16_rows;
    use super::super::kv::CpuCache;
    use crate::KvType;

    #[test]
    fn single_visible_key_returns_its_value_and_window_hides_old_keys() {
        // 1 head, dim 2, 3 positions; window 1 means each token sees only itself.
        let mut c = CpuCache::new(1, 3, 2, 2, KvType::F32).expect("cache");
        c.layers[0].k.write(0, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        c.layers[0].v.write(0, &[10.0, 0.0, 0.0, 20.0, 5.0, 5.0]);
        let s = AttnShape { n_head: 1, n_head_kv: 1, head_dim_k: 2, head_dim_v: 2, kq_scale: 1.0, window: Some(1) };
        let q = vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        let mut out = vec![0.0; 6];
        attention(&s, &q, &c.layers[0], 0, 3, false, &mut out);
        assert_eq!(out, vec![10.0, 0.0, 0.0, 20.0, 5.0, 5.0]);
        // Without a window, token 1 mixes positions 0 and 1 with weights softmax(1, 0).
        let s = AttnShape { window: None, ..s };
        attention(&s, &q, &c.layers[0], 0, 3, false, &mut out);
        let e = 1f32.exp();
        assert!((out[2] - 10.0 * e / (e + 1.0)).abs() < 1e-4);
        assert!((out[3] - 20.0 / (e + 1.0)).abs() < 1e-4);
    }

    /// Seeded xorshift values in [-2, 2) for the attention inputs.
    fn rng(mut seed: u32) -> impl FnMut() -> f32 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32 - 0.5) * 4.0
        }
    }

    /// The batch path one dot at a time (`DotOrder::Gemm`), as it ran before tiling.
    fn attention_rows_reference(s: &AttnShape, q: &[f32], layer: &LayerKv, pos0: usize, n_tokens: usize, f16_math: bool) -> Vec<f32> {
        let n_kv = pos0 + n_tokens;
        let (dk, dv) = (s.head_dim_k, s.head_dim_v);
        let (kw, vw) = (s.n_head_kv * dk, s.n_head_kv * dv);
        let mut kf = vec![0.0f32; n_kv * kw];
        let mut vf = vec![0.0f32; n_kv * vw];
        layer.k.read(0, &mut kf);
        layer.v.read(0, &mut vf);
        let mut out = vec![0.0f32; n_tokens * s.n_head * dv];
        for h in 0..s.n_head {
            let kvh = h / (s.n_head / s.n_head_kv);
            for t in 0..n_tokens {
                let pos = pos0 + t;
                let lo = s.first_visible(pos);
                let mut qh = q[t * s.n_head * dk + h * dk..][..dk].to_vec();
                if f16_math {
                    round_f16(&mut qh);
                }
                let mut sc: Vec<f32> = (lo..=pos).map(|j| dot(DotOrder::Gemm, &kf[j * kw + kvh * dk..][..dk], &qh, 0) * s.kq_scale).collect();
                softmax_ggml(&mut sc, lo);
                if f16_math {
                    round_f16(&mut sc);
                }
                for d in 0..dv {
                    let col: Vec<f32> = (lo..=pos).map(|j| vf[j * vw + kvh * dv + d]).collect();
                    out[t * s.n_head * dv + h * dv + d] = dot(DotOrder::Gemm, &col, &sc, lo);
                }
            }
        }
        out
    }

    #[test]
    fn tiled_batch_attention_has_the_bits_of_one_dot_at_a_time() {
        let mut rnd = rng(0x9e37_79b9u32);
        // (n_head, n_head_kv, dk, dv, window, pos0, n_tokens, cache type)
        let cases = [
            (4, 1, 256, 256, Some(40), 0, 77, KvType::F16),
            (14, 2, 64, 64, None, 0, 70, KvType::F16),
            (4, 2, 16, 16, None, 21, 35, KvType::F32),
            (8, 8, 128, 64, Some(7), 5, 40, KvType::F16),
            (2, 1, 48, 32, None, 3, 2, KvType::F32),
        ];
        for (n_head, n_head_kv, dk, dv, window, pos0, n_tokens, ty) in cases {
            let n_kv = pos0 + n_tokens;
            let mut c = CpuCache::new(1, n_kv, n_head_kv * dk, n_head_kv * dv, ty).expect("cache");
            let k: Vec<f32> = (0..n_kv * n_head_kv * dk).map(|_| rnd()).collect();
            let v: Vec<f32> = (0..n_kv * n_head_kv * dv).map(|_| rnd()).collect();
            c.layers[0].k.write(0, &k);
            c.layers[0].v.write(0, &v);
            let q: Vec<f32> = (0..n_tokens * n_head * dk).map(|_| rnd()).collect();
            let s = AttnShape { n_head, n_head_kv, head_dim_k: dk, head_dim_v: dv, kq_scale: 1.0 / (dk as f32).sqrt(), window };
            let f16_math = ty == KvType::F16;
            let mut got = vec![0.0f32; n_tokens * n_head * dv];
            attention(&s, &q, &c.layers[0], pos0, n_tokens, f16_math, &mut got);
            let want = attention_rows_reference(&s, &q, &c.layers[0], pos0, n_tokens, f16_math);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "heads {n_head}/{n_head_kv} dims {dk}/{dv} window {window:?} pos0 {pos0} tokens {n_tokens}");
        }
    }

    /// The paged path one head and one block at a time, as it ran before tiling.
    fn attention_paged_reference(s: &AttnShape, q: &[f32], kv: &CpuPool, il: usize, seqs: &[SeqSpan], out: &mut [f32]) {
        struct F32Layer {
            k: Vec<f32>,
            v: Vec<f32>,
        }
        let widen = |x: &[half::f16]| x.iter().map(|h| h.to_f32()).collect::<Vec<f32>>();
        let layer = &F32Layer { k: widen(&kv.layers[il].k), v: widen(&kv.layers[il].v) };
        let (bs, kw, vw) = (kv.block_size, kv.k_width, kv.v_width);
        let group = s.n_head / s.n_head_kv;
        let (dk, dv) = (s.head_dim_k, s.head_dim_v);
        let row0 = row_offsets(seqs);
        let n_tasks = seqs.len() * s.n_head_kv;
        // Per task: `[n_tokens, group * dv]` (the group's heads side by side).
        let bufs: Vec<Mutex<Vec<f32>>> = (0..n_tasks).map(|_| Mutex::new(Vec::new())).collect();
        parallel_for(n_tasks, &|task| {
            let (i, kvh) = (task / s.n_head_kv, task % s.n_head_kv);
            let sq = &seqs[i];
            let n_kv = sq.pos0 + sq.n_tokens;
            let mut qh = vec![0.0f32; dk];
            let mut scores = vec![0.0f32; n_kv];
            let gw = group * dv;
            let mut o = vec![0.0f32; sq.n_tokens * gw];
            let mut lanes = vec![[0.0f32; 16]; dv];
            let mut p_rep = vec![0.0f32; dv * 16];
            for t in 0..sq.n_tokens {
                let pos = sq.pos0 + t;
                let lo = s.first_visible(pos);
                // Block segments [a, b) of the visible positions lo..=pos.
                let segments = (lo / bs..pos / bs + 1).map(|bi| (bi, (bi * bs).max(lo), ((bi + 1) * bs).min(pos + 1)));
                for g in 0..group {
                    let h = kvh * group + g;
                    qh.copy_from_slice(&q[(row0[i] + t) * s.n_head * dk + h * dk..][..dk]);
                    round_f16(&mut qh);
                    for (bi, a, b) in segments.clone() {
                        let r = sq.blocks[bi] as usize * bs + a % bs;
                        dot16_rows(&layer.k[r * kw + kvh * dk..], kw, &qh, &mut scores[a..b]);
                    }
                    let sc = &mut scores[lo..pos + 1];
                    for v in sc.iter_mut() {
                        *v *= s.kq_scale;
                    }
                    softmax_ggml(sc, lo);
                    round_f16(sc);
                    lanes.iter_mut().for_each(|l| *l = [0.0; 16]);
                    for (bi, a, b) in segments.clone() {
                        let vb = &layer.v[sq.blocks[bi] as usize * vw * bs..][..vw * bs];
                        let p = &scores[a..b];
                        if bs == 16 && b - a == 16 && wide_block_sum(&vb[kvh * dv * 16..][..dv * 16], p, &mut p_rep, &mut lanes) {
                            continue;
                        }
                        for (d, l) in lanes.iter_mut().enumerate() {
                            let col = (kvh * dv + d) * bs;
                            fma_lanes(&vb[col + a % bs..col + b - (bi * bs)], p, a, l);
                        }
                    }
                    for (od, l) in o[t * gw + g * dv..t * gw + (g + 1) * dv].iter_mut().zip(&lanes) {
                        *od = reduce16(l);
                    }
                }
            }
            *bufs[task].lock().unwrap_or_else(|e| e.into_inner()) = o;
        });
        scatter_groups(s, bufs, &row0, out);
    }

    #[test]
    fn tiled_paged_attention_has_the_bits_of_one_head_and_block_at_a_time() {
        let mut rnd = rng(0x1234_5678u32);
        // (n_head, n_head_kv, dk, dv, window, block size)
        for (n_head, n_head_kv, dk, dv, window, bs) in [(14, 2, 64, 64, None, 16), (4, 1, 256, 256, Some(21), 16), (6, 3, 32, 16, None, 32), (2, 2, 16, 48, Some(5), 8)] {
            let (kw, vw) = (n_head_kv * dk, n_head_kv * dv);
            let n_blocks = 40;
            let mut kv = CpuPool::new(1, n_blocks, bs, kw, vw).expect("pool");
            // Three sequences: a decode row deep in its cache, a prefill chunk after a
            // prefix, a fresh prompt; blocks scattered over the pool.
            let spans = [(37usize, 1usize), (9, 14), (0, 23)];
            let tables: Vec<Vec<u32>> = vec![vec![7, 3, 30, 12, 1], vec![20, 5, 33, 2], vec![39, 8, 14, 25]];
            for (&(pos0, n), blocks) in spans.iter().zip(&tables) {
                for pos in 0..pos0 + n {
                    let k: Vec<f32> = (0..kw).map(|_| rnd()).collect();
                    let v: Vec<f32> = (0..vw).map(|_| rnd()).collect();
                    kv.store(0, blocks, pos, &k, &v);
                }
            }
            let seqs: Vec<SeqSpan> = spans.iter().zip(&tables).map(|(&(pos0, n_tokens), b)| SeqSpan { pos0, n_tokens, blocks: b }).collect();
            let n_rows: usize = spans.iter().map(|s| s.1).sum();
            let q: Vec<f32> = (0..n_rows * n_head * dk).map(|_| rnd()).collect();
            let s = AttnShape { n_head, n_head_kv, head_dim_k: dk, head_dim_v: dv, kq_scale: 1.0 / (dk as f32).sqrt(), window };
            let mut got = vec![0.0f32; n_rows * n_head * dv];
            let mut want = vec![1.0f32; n_rows * n_head * dv];
            attention_paged(&s, &q, &kv, 0, &seqs, &mut got);
            attention_paged_reference(&s, &q, &kv, 0, &seqs, &mut want);
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "heads {n_head}/{n_head_kv} dims {dk}/{dv} window {window:?} block {bs}");
        }
    }

    #[test]
    fn single_token_attention_has_the_bits_of_one_dot_per_value_column() {
        let mut rnd = rng(0x0bad_cafeu32);
        for (n_head, n_head_kv, dk, dv, window, pos) in [(9, 3, 64, 64, None, 200), (4, 1, 256, 256, Some(50), 130), (2, 2, 80, 48, None, 0), (14, 2, 64, 64, Some(300), 70)] {
            let n_kv = pos + 1;
            let mut c = CpuCache::new(1, n_kv, n_head_kv * dk, n_head_kv * dv, KvType::F16).expect("cache");
            c.layers[0].k.write(0, &(0..n_kv * n_head_kv * dk).map(|_| rnd()).collect::<Vec<_>>());
            c.layers[0].v.write(0, &(0..n_kv * n_head_kv * dv).map(|_| rnd()).collect::<Vec<_>>());
            let q: Vec<f32> = (0..n_head * dk).map(|_| rnd()).collect();
            let s = AttnShape { n_head, n_head_kv, head_dim_k: dk, head_dim_v: dv, kq_scale: 0.125, window };
            let mut got = vec![0.0f32; n_head * dv];
            attention(&s, &q, &c.layers[0], pos, 1, true, &mut got);
            // Reference: every visible row in f32, V transposed, one VecDot per output.
            let (kw, vw) = (n_head_kv * dk, n_head_kv * dv);
            let mut kf = vec![0.0f32; n_kv * kw];
            let mut vf = vec![0.0f32; n_kv * vw];
            c.layers[0].k.read(0, &mut kf);
            c.layers[0].v.read(0, &mut vf);
            let lo = s.first_visible(pos);
            for h in 0..n_head {
                let kvh = h / (n_head / n_head_kv);
                let mut qh = q[h * dk..][..dk].to_vec();
                round_f16(&mut qh);
                let mut sc: Vec<f32> = (lo..=pos).map(|j| dot(DotOrder::VecDot { tail_from: dk - dk % 64 }, &kf[j * kw + kvh * dk..][..dk], &qh, 0) * 0.125).collect();
                softmax_ggml(&mut sc, lo);
                round_f16(&mut sc);
                for d in 0..dv {
                    let col: Vec<f32> = (lo..=pos).map(|j| vf[j * vw + kvh * dv + d]).collect();
                    let want = dot(DotOrder::VecDot { tail_from: usize::MAX }, &col, &sc, lo);
                    assert_eq!(got[h * dv + d].to_bits(), want.to_bits(), "head {h} dim {d} (heads {n_head}/{n_head_kv}, pos {pos}, window {window:?})");
                }
            }
        }
    }

    #[test]
    fn dot_orders_agree_with_a_plain_sum_on_exact_values() {
        let a: Vec<f32> = (0..200).map(|i| (i % 7) as f32).collect();
        let b: Vec<f32> = (0..200).map(|i| (i % 5) as f32).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert_eq!(dot(DotOrder::Gemm, &a, &b, 0), plain);
        assert_eq!(dot(DotOrder::Gemm, &a, &b, 13), plain);
        assert_eq!(dot(DotOrder::VecDot { tail_from: 192 }, &a, &b, 0), plain);
        assert_eq!(dot(DotOrder::VecDot { tail_from: usize::MAX }, &a, &b, 5), plain);
    }
}
