//! KV storage, attention and mixture-of-experts on the device.
//!
//! The host knows every row's position and, for the paged pool, its sequence's block
//! table; it turns them into per-row cache slots (for the store) and per-row (position,
//! first visible position, block-table offset) triples (for attending), uploaded once per
//! call. The attend kernel is one workgroup per (row, head).
//!
//! MoE routes on the host: the router logits (`[rows, n_expert]`, small) are read back,
//! [`jikji_backend::Routing::route`] picks each row's experts and weights, and each used
//! expert's rows run through its gate/up/down as one batch, added back with their
//! weights. One host round trip per MoE layer; a device-side top-k would remove it.

use crate::gpu::Kernel;
use crate::{WgpuAct, WgpuBackend};
use jikji_backend::{AttnShape, Backend, BackendError, Experts, KAbsorb, Kv, MlaAttend, Rope, Step};

/// Where each row of a step lives and what it sees.
struct RowMap {
    slot: Vec<u32>,
    info: Vec<u32>, // per row: pos, first visible, table offset
    tbl: Vec<u32>,
    block_size: usize,
}

fn row_map(step: &Step<WgpuBackend>, s: &AttnShape, capacity: usize) -> Result<RowMap, BackendError> {
    let mut m = RowMap { slot: Vec::new(), info: Vec::new(), tbl: Vec::new(), block_size: 1 };
    match &step.kv {
        Kv::Shared { .. } => return Err(BackendError::Device("shared-prefix steps (evaluation batches) run on the CPU backend only".into())),
        Kv::Contiguous { .. } => {
            for &p in &step.positions {
                if p >= capacity {
                    return Err(BackendError::Shape(format!("attention: position {p} in a cache of {capacity}")));
                }
                m.slot.push(p as u32);
                m.info.extend([p as u32, s.first_visible(p) as u32, 0]);
            }
        }
        Kv::Paged { pool, seqs } => {
            let bs = pool.block_size;
            m.block_size = bs;
            for sq in seqs.iter() {
                let off = m.tbl.len() as u32;
                for &b in sq.blocks {
                    if b as usize >= pool.n_blocks {
                        return Err(BackendError::Shape(format!("attention: block {b} of a pool of {}", pool.n_blocks)));
                    }
                    m.tbl.push(b);
                }
                for p in sq.pos0..sq.pos0 + sq.n_tokens {
                    let Some(&b) = sq.blocks.get(p / bs) else {
                        return Err(BackendError::Shape(format!("attention: position {p} past a block table of {}", sq.blocks.len())));
                    };
                    m.slot.push((b as usize * bs + p % bs) as u32);
                    m.info.extend([p as u32, s.first_visible(p) as u32, off]);
                }
            }
        }
    }
    Ok(m)
}

pub(crate) fn attention(be: &WgpuBackend, step: &mut Step<WgpuBackend>, il: usize, s: &AttnShape, q: &WgpuAct, k: &WgpuAct, v: &WgpuAct) -> Result<WgpuAct, BackendError> {
    let n = step.n_rows();
    let (kd, vd) = (s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v);
    if s.n_head_kv == 0 || s.n_head % s.n_head_kv != 0 || q.width != s.n_head * s.head_dim_k || k.width != kd || v.width != vd || q.rows != n || k.rows != n || v.rows != n {
        return Err(BackendError::Shape(format!("attention: q/k/v of widths {}/{}/{} for {n} rows", q.width, k.width, v.width)));
    }
    if s.head_dim_k > 512 || s.head_dim_v > 512 {
        return Err(BackendError::Shape(format!("attention: heads of {}/{} dims (the Vulkan kernel takes at most 512)", s.head_dim_k, s.head_dim_v)));
    }
    let (capacity, widths, layers) = match &step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => (cache.n_ctx, (cache.k_width, cache.v_width), cache.layers.len()),
        Kv::Paged { pool, .. } => (pool.n_blocks * pool.block_size, (pool.k_width, pool.v_width), pool.layers.len()),
    };
    if il >= layers || widths != (kd, vd) {
        return Err(BackendError::CacheMismatch(format!("layer {il} of a cache of {layers} layers with widths {}/{}, the model writes {kd}/{vd}", widths.0, widths.1)));
    }
    let map = row_map(step, s, capacity)?;
    let g = be.g();
    let slot = g.words(&map.slot, "cache slots")?;
    let paged = !map.tbl.is_empty();
    let tbl = g.words(&map.tbl, "block tables")?;
    let (kc, vc, f16, packed) = match &step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => (&cache.layers[il].0, &cache.layers[il].1, cache.f16, cache.packed),
        Kv::Paged { pool, .. } => (&pool.layers[il].0, &pool.layers[il].1, true, pool.packed),
    };
    be.store(kc, k, &slot, f16, packed);
    be.store(vc, v, &slot, f16, packed);
    attend(be, &map, q, (kc, vc, packed), s, 0, &tbl, paged)
}

/// The attend kernel over rows `map` of `q` (`[n, n_head · dk]`) → `[n, n_head · dv]`,
/// reading the layer's `(keys, values, packed f16)`; `vstride` ≠ 0: the values are the
/// first `dv` values of each key row (`values` is then `keys`), `vstride` wide.
#[allow(clippy::too_many_arguments)]
fn attend(be: &WgpuBackend, map: &RowMap, q: &WgpuAct, (kc, vc, packed): (&wgpu::Buffer, &wgpu::Buffer, bool), s: &AttnShape, vstride: usize, tbl: &wgpu::Buffer, paged: bool) -> Result<WgpuAct, BackendError> {
    let g = be.g();
    let n = q.rows;
    let info = g.words(&map.info, "row positions")?;
    let out = be.act(n, s.n_head * s.head_dim_v)?;
    let p = [s.n_head as u32, s.n_head_kv as u32, s.head_dim_k as u32, s.head_dim_v as u32, s.kq_scale.to_bits(), map.block_size as u32, paged as u32, vstride as u32, packed as u32, 0, 0, 0];
    // One workgroup per (row, head): rows along x (at most 65,535 per dispatch).
    let mut r0 = 0;
    while r0 < n {
        let rows = (n - r0).min(65535);
        if r0 == 0 && rows == n {
            g.dispatch(Kernel::Attend, &p, &[&q.buf, kc, vc, &info, tbl, &out.buf], (rows as u32, s.n_head as u32));
        } else {
            let idx: Vec<u32> = (r0..r0 + rows).map(|r| r as u32).collect();
            let qs = be.gather(q, &idx)?;
            let is = g.words(&map.info[3 * r0..3 * (r0 + rows)], "row positions")?;
            let os = be.act(rows, out.width)?;
            g.dispatch(Kernel::Attend, &p, &[&qs.buf, kc, vc, &is, tbl, &os.buf], (rows as u32, s.n_head as u32));
            be.scatter_add(&out, &os, &idx, &vec![1.0; rows])?;
        }
        r0 += rows;
    }
    Ok(out)
}

/// Multi-head latent attention on the device, as the CPU's `mla` computes it (see
/// `jikji_backend::cpu::mla`): the cache row `[rmsnorm(c) | rope(k_pe)]` is stored once
/// per token; each head's query is absorbed into latent space (`attn_k_b`, a matmul per
/// head) beside its rotated part; the attend kernel then runs multi-query over the latent
/// rows with the first `kv_lora` values of each key as its value (no value cache); each
/// head's weighted latent goes through its `attn_v_b`. Column windows move between the
/// steps with the `Rows` kernel's copy. Files with the older combined `attn_kv_b` (the
/// key part applied transposed, held on the host) are refused.
pub(crate) fn mla(be: &WgpuBackend, step: &mut Step<WgpuBackend>, il: usize, m: &MlaAttend<WgpuBackend>, q: &WgpuAct, ckv: &WgpuAct) -> Result<WgpuAct, BackendError> {
    let s = &m.shape;
    let n = step.n_rows();
    let (nh, dk, lora, nr, nope, dv, w) = (s.n_head, s.dk(), s.kv_lora, s.rope, s.nope, s.dv, s.cache_width());
    if q.rows != n || ckv.rows != n || q.width != nh * dk || ckv.width != w || m.v_b.len() != nh {
        return Err(BackendError::Shape(format!("mla: q [{}, {}] and latent [{}, {}] for {n} rows of {nh} heads", q.rows, q.width, ckv.rows, ckv.width)));
    }
    let KAbsorb::PerHead(kb) = &m.k_absorb else {
        return Err(BackendError::Device(
            "this file's latent attention has the older combined attn_kv_b tensor, which the Vulkan backend does not take (a current llama.cpp conversion writes attn_k_b/attn_v_b); use --backend cpu".into(),
        ));
    };
    if kb.len() != nh {
        return Err(BackendError::Shape(format!("mla: {} absorbed key matrices for {nh} heads", kb.len())));
    }
    if w > 1024 || lora > 512 {
        return Err(BackendError::Shape(format!("mla: latent rows of {w} values and values of {lora} (the Vulkan kernel takes at most 1024 and 512)")));
    }
    let (capacity, widths, layers) = match &step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => (cache.n_ctx, (cache.k_width, cache.v_width), cache.layers.len()),
        Kv::Paged { pool, .. } => (pool.n_blocks * pool.block_size, (pool.k_width, pool.v_width), pool.layers.len()),
    };
    if il >= layers || widths != (w, 0) {
        return Err(BackendError::CacheMismatch(format!("layer {il} of a cache of {layers} layers with widths {}/{}, latent attention writes {w}/0", widths.0, widths.1)));
    }
    let rope = Rope::Yarn(m.rope);
    // Cache rows [n, w] = [rmsnorm(c) | rope(k_pe)].
    let mut c = be.act(n, lora)?;
    be.copy_cols(ckv, 0, &c, 0, lora)?;
    be.rms_norm_inplace(&mut c, &m.kv_a_norm, s.rms_eps)?;
    let mut k_pe = be.act(n, nr)?;
    be.copy_cols(ckv, lora, &k_pe, 0, nr)?;
    be.rope(step, &mut k_pe, nr, &rope)?;
    let rows = be.act(n, w)?;
    be.copy_cols(&c, 0, &rows, 0, lora)?;
    be.copy_cols(&k_pe, 0, &rows, lora, nr)?;
    // Queries [n, nh · w]: per head [k_b · q_nope | rope(q_pe)].
    let mut q_pe = be.act(n, nh * nr)?;
    for h in 0..nh {
        be.copy_cols(q, h * dk + nope, &q_pe, h * nr, nr)?;
    }
    be.rope(step, &mut q_pe, nr, &rope)?;
    let q_full = be.act(n, nh * w)?;
    for (h, kb) in kb.iter().enumerate() {
        let qn = be.act(n, nope)?;
        be.copy_cols(q, h * dk, &qn, 0, nope)?;
        let q_lat = be.mm(kb, &qn)?; // [n, kv_lora]
        be.copy_cols(&q_lat, 0, &q_full, h * w, lora)?;
        be.copy_cols(&q_pe, h * nr, &q_full, h * w + lora, nr)?;
    }
    // Store, then attend multi-query over the latent rows.
    let shape = AttnShape { n_head: nh, n_head_kv: 1, head_dim_k: w, head_dim_v: lora, kq_scale: s.kq_scale, window: None };
    let map = row_map(step, &shape, capacity)?;
    let g = be.g();
    let slot = g.words(&map.slot, "cache slots")?;
    let paged = !map.tbl.is_empty();
    let tbl = g.words(&map.tbl, "block tables")?;
    let (kc, f16, packed) = match &step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => (&cache.layers[il].0, cache.f16, cache.packed),
        Kv::Paged { pool, .. } => (&pool.layers[il].0, true, pool.packed),
    };
    be.store(kc, &rows, &slot, f16, packed);
    let lat = attend(be, &map, &q_full, (kc, kc, packed), &shape, w, &tbl, paged)?; // [n, nh · kv_lora]
    // Per head: the weighted latent through v_b → [n, nh · dv].
    let ctx = be.act(n, nh * dv)?;
    for (h, vb) in m.v_b.iter().enumerate() {
        let lh = be.act(n, lora)?;
        be.copy_cols(&lat, h * lora, &lh, 0, lora)?;
        let v = be.mm(vb, &lh)?; // [n, dv]
        be.copy_cols(&v, 0, &ctx, h * dv, dv)?;
    }
    Ok(ctx)
}

pub(crate) fn moe(be: &WgpuBackend, x: &WgpuAct, e: &Experts<WgpuBackend>) -> Result<WgpuAct, BackendError> {
    let n_expert = e.routing.n_expert;
    if e.gate_inp.cols != x.width || e.experts.len() != n_expert || e.gate_inp.rows != n_expert {
        return Err(BackendError::Shape(format!("moe: router of {} columns and {} experts for input {} wide", e.gate_inp.cols, e.experts.len(), x.width)));
    }
    let n = x.rows;
    let logits = be.mm(&e.gate_inp, x)?;
    let bytes = be.g().read(&logits.buf, (n * n_expert * 4) as u64)?;
    let logits: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let mut by_expert: Vec<(Vec<u32>, Vec<f32>)> = vec![(Vec::new(), Vec::new()); n_expert];
    for (t, l) in logits.chunks_exact(n_expert).take(n).enumerate() {
        for (ex, w) in e.routing.route(l, e.exp_probs_b.as_deref()) {
            by_expert[ex].0.push(t as u32);
            by_expert[ex].1.push(w);
        }
    }
    let out = be.act(n, x.width)?;
    for (ex, (rows, weights)) in by_expert.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        let w = &e.experts[ex];
        let xe = be.gather(x, rows)?;
        let g = be.mm(&w.gate, &xe)?;
        let u = be.mm(&w.up, &xe)?;
        be.glu_into(&g, &u, e.act);
        let d = be.mm(&w.down, &g)?;
        be.scatter_add(&out, &d, rows, weights)?;
    }
    Ok(out)
}
