//! KV storage and attention on the device.
//!
//! The host knows every row's position and, for the paged pool, its sequence's block
//! table; it turns them into per-row slot indices (for the store) and per-row position,
//! first visible position and block-table offset (for attending), uploaded when they change
//! (once per step: the layers of a step share them; see `CudaBackend::to_dev_memo`).
//! The attend kernel keeps one score row per (query row, head) in a scratch buffer; long
//! steps are attended in chunks of rows so the scratch stays under [`SCRATCH_FLOATS`].

use crate::{dev, flat, CudaAct, CudaBackend};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use jikji_backend::{AttnShape, Backend, BackendError, KAbsorb, Kv, MlaAttend, Rope, Step};

/// Most floats of attention scores held at once (256 MiB).
const SCRATCH_FLOATS: usize = 64 << 20;

/// `n_layer` pairs of zeroed key/value buffers of `slots` rows.
pub(crate) fn alloc_layers(be: &CudaBackend, n_layer: usize, slots: usize, k_width: usize, v_width: usize, elem: usize) -> Result<Vec<(CudaSlice<u8>, CudaSlice<u8>)>, BackendError> {
    let bytes = |w: usize| slots.checked_mul(w).and_then(|n| n.checked_mul(elem)).ok_or_else(|| BackendError::Alloc("cache size overflows".into()));
    let (kb, vb) = (bytes(k_width)?, bytes(v_width)?);
    let total = (kb + vb).saturating_mul(n_layer);
    let (free, _) = be.inner.ctx.mem_get_info().map_err(dev)?;
    if total > free {
        return Err(BackendError::Alloc(format!("a KV cache of {:.1} GiB does not fit the GPU's {:.1} GiB free", total as f64 / (1u64 << 30) as f64, free as f64 / (1u64 << 30) as f64)));
    }
    let mut layers = Vec::with_capacity(n_layer);
    for _ in 0..n_layer {
        let k = be.stream().alloc_zeros::<u8>(kb.max(1)).map_err(|e| BackendError::Alloc(format!("KV cache on the GPU: {e:?}")))?;
        let v = be.stream().alloc_zeros::<u8>(vb.max(1)).map_err(|e| BackendError::Alloc(format!("KV cache on the GPU: {e:?}")))?;
        layers.push((k, v));
    }
    Ok(layers)
}

/// Where each row of a step lives and what it sees.
struct RowMap {
    slot: Vec<u64>,     // cache slot of the row's own position
    pos: Vec<i32>,      // the row's position
    lo: Vec<i32>,       // first visible position
    tbl: Vec<i32>,      // concatenated block tables (paged), empty for contiguous
    tbl_off: Vec<i32>,  // offset of the row's table in tbl (paged)
    block_size: usize,
}

fn row_map(step: &Step<CudaBackend>, s: &AttnShape, capacity: usize) -> Result<RowMap, BackendError> {
    let mut m = RowMap { slot: Vec::new(), pos: Vec::new(), lo: Vec::new(), tbl: Vec::new(), tbl_off: Vec::new(), block_size: 1 };
    match &step.kv {
        Kv::Shared { .. } => return Err(BackendError::Device("shared-prefix steps (evaluation batches) run on the CPU backend only".into())),
        Kv::Contiguous { .. } => {
            for &p in &step.positions {
                if p >= capacity {
                    return Err(BackendError::Shape(format!("attention: position {p} in a cache of {capacity}")));
                }
                m.slot.push(p as u64);
                m.pos.push(p as i32);
                m.lo.push(s.first_visible(p) as i32);
            }
        }
        Kv::Paged { pool, seqs } => {
            let bs = pool.block_size;
            m.block_size = bs;
            for sq in seqs.iter() {
                let off = m.tbl.len() as i32;
                for &b in sq.blocks {
                    if b as usize >= pool.n_blocks {
                        return Err(BackendError::Shape(format!("attention: block {b} of a pool of {}", pool.n_blocks)));
                    }
                    m.tbl.push(b as i32);
                }
                for p in sq.pos0..sq.pos0 + sq.n_tokens {
                    let Some(&b) = sq.blocks.get(p / bs) else {
                        return Err(BackendError::Shape(format!("attention: position {p} past a block table of {}", sq.blocks.len())));
                    };
                    m.slot.push(b as u64 * bs as u64 + (p % bs) as u64);
                    m.pos.push(p as i32);
                    m.lo.push(s.first_visible(p) as i32);
                    m.tbl_off.push(off);
                }
            }
        }
    }
    Ok(m)
}

fn store(be: &CudaBackend, cache: &mut CudaSlice<u8>, f16: bool, src: &CudaAct, slot: &CudaSlice<u64>) -> Result<(), BackendError> {
    let (f, w, rows) = (f16 as i32, src.width as i32, src.rows() as i32);
    let mut b = be.stream().launch_builder(&be.k().kv_store);
    b.arg(cache).arg(&f).arg(&src.data).arg(slot).arg(&w).arg(&rows);
    // SAFETY: matches kv_store; every slot is inside the cache layer (checked by row_map).
    unsafe { b.launch(flat(src.rows() * src.width)) }.map(|_| ()).map_err(dev)
}

pub(crate) fn attention(be: &CudaBackend, step: &mut Step<CudaBackend>, il: usize, s: &AttnShape, q: &CudaAct, k: &CudaAct, v: &CudaAct) -> Result<CudaAct, BackendError> {
    let n = step.n_rows();
    let (kd, vd) = (s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v);
    if s.n_head_kv == 0 || s.n_head % s.n_head_kv != 0 || q.data.len() < n * s.n_head * s.head_dim_k || q.width != s.n_head * s.head_dim_k || k.width != kd || v.width != vd || k.rows() != n || v.rows() != n {
        return Err(BackendError::Shape(format!("attention: q/k/v of widths {}/{}/{} for {n} rows", q.width, k.width, v.width)));
    }
    let (capacity, widths, layers) = match &step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => (cache.n_ctx, (cache.k_width, cache.v_width), cache.layers.len()),
        Kv::Paged { pool, .. } => (pool.n_blocks * pool.block_size, (pool.k_width, pool.v_width), pool.layers.len()),
    };
    if il >= layers || widths != (kd, vd) {
        return Err(BackendError::CacheMismatch(format!("layer {il} of a cache of {layers} layers with widths {}/{}, the model writes {kd}/{vd}", widths.0, widths.1)));
    }
    let map = row_map(step, s, capacity)?;
    let slot = be.to_dev_memo("attn.slot", &map.slot)?;
    let (kc, vc, f16) = match &mut step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => {
            let f16 = cache.f16;
            let (kc, vc) = &mut cache.layers[il];
            (kc, vc, f16)
        }
        Kv::Paged { pool, .. } => {
            let (kc, vc) = &mut pool.layers[il];
            (kc, vc, true)
        }
    };
    store(be, kc, f16, k, &slot)?;
    store(be, vc, f16, v, &slot)?;
    attend(be, &map, q, (&*kc, &*vc, f16), s, 0)
}

/// The attend kernel over the rows of `map` (`q` `[n, n_head · dk]` → `[n, n_head · dv]`)
/// reading the layer's `(keys, values, f16)`; `vstride` ≠ 0: the values are the first `dv`
/// values of each key row (`values` is then `keys`), `vstride` wide.
fn attend(be: &CudaBackend, map: &RowMap, q: &CudaAct, (kc, vc, f16): (&CudaSlice<u8>, &CudaSlice<u8>, bool), s: &AttnShape, vstride: usize) -> Result<CudaAct, BackendError> {
    let n = map.pos.len();
    let pos = be.to_dev_memo("attn.pos", &map.pos)?;
    let lo = be.to_dev_memo("attn.lo", &map.lo)?;
    let paged = !map.tbl.is_empty();
    let tbl = be.to_dev_memo("attn.tbl", &map.tbl)?;
    let tbl_off = be.to_dev_memo("attn.tbl_off", &map.tbl_off)?;
    let span = map.pos.iter().zip(&map.lo).map(|(p, l)| (p - l + 1) as usize).max().unwrap_or(1);
    let mut out = be.zeros(n * s.n_head * s.head_dim_v)?;
    let chunk = (SCRATCH_FLOATS / (s.n_head * span).max(1)).clamp(1, n.max(1));
    let mut sc = be.zeros(chunk * s.n_head * span)?;
    let (fi, bs) = (f16 as i32, map.block_size as i32);
    let (nh, nkv, dk, dv, sp, vs) = (s.n_head as i32, s.n_head_kv as i32, s.head_dim_k as i32, s.head_dim_v as i32, span as i32, vstride as i32);
    let null: u64 = 0;
    let mut r0 = 0usize;
    while r0 < n {
        let rows = chunk.min(n - r0);
        let r0i = r0 as i32;
        let cfg = LaunchConfig { grid_dim: (rows as u32, s.n_head as u32, 1), block_dim: (128, 1, 1), shared_mem_bytes: (s.head_dim_k * 4) as u32 };
        let mut b = be.stream().launch_builder(&be.k().attend);
        b.arg(&q.data).arg(kc).arg(vc).arg(&fi).arg(&*pos).arg(&*lo);
        if paged {
            b.arg(&*tbl).arg(&*tbl_off);
        } else {
            b.arg(&null).arg(&null);
        }
        b.arg(&bs).arg(&nh).arg(&nkv).arg(&dk).arg(&dv).arg(&vs).arg(&s.kq_scale).arg(&mut sc).arg(&sp).arg(&r0i).arg(&mut out);
        // SAFETY: matches attend; rows r0..r0+rows exist in q/pos/lo/out, every visible
        // slot is inside the layer (row_map checked positions and blocks), sc holds
        // rows * n_head * span floats and the dynamic shared memory dk floats.
        unsafe { b.launch(cfg) }.map_err(dev)?;
        r0 += rows;
    }
    Ok(CudaAct { data: out, width: s.n_head * s.head_dim_v })
}

/// `dst[r, d_off .. d_off + width] = src[r, s_off .. s_off + width]` for every row.
fn copy_cols(be: &CudaBackend, src: &CudaAct, s_off: usize, dst: &mut CudaAct, d_off: usize, width: usize) -> Result<(), BackendError> {
    let rows = src.rows();
    if rows != dst.rows() || s_off + width > src.width || d_off + width > dst.width {
        return Err(BackendError::Shape(format!("column copy: {width} columns from {s_off} of [{rows}, {}] to {d_off} of [{}, {}]", src.width, dst.rows(), dst.width)));
    }
    let (sw, so, dw, dof, w, r) = (src.width as i32, s_off as i32, dst.width as i32, d_off as i32, width as i32, rows as i32);
    let mut b = be.stream().launch_builder(&be.k().copy_cols);
    b.arg(&src.data).arg(&sw).arg(&so).arg(&mut dst.data).arg(&dw).arg(&dof).arg(&w).arg(&r);
    // SAFETY: matches copy_cols; both windows lie inside their rows (checked above).
    unsafe { b.launch(flat(rows * width)) }.map(|_| ()).map_err(dev)
}

/// A zeroed `[rows, width]` activation.
fn act(be: &CudaBackend, rows: usize, width: usize) -> Result<CudaAct, BackendError> {
    Ok(CudaAct { data: be.zeros(rows * width)?, width })
}

/// Multi-head latent attention, as the Vulkan backend composes it (`jikji_wgpu`'s
/// `attention::mla`; the CPU's `mla` is the reference): the latent row `[rmsnorm(c) |
/// rope(k_pe)]` is the layer's only cache, each head's query is absorbed through its
/// `attn_k_b`, the attend kernel runs multi-query over the latent rows with each key's
/// first `kv_lora` values as its value, and each head's result goes through `attn_v_b`.
/// Files with the older combined `attn_kv_b` are refused.
pub(crate) fn mla(be: &CudaBackend, step: &mut Step<CudaBackend>, il: usize, m: &MlaAttend<CudaBackend>, q: &CudaAct, ckv: &CudaAct) -> Result<CudaAct, BackendError> {
    let s = &m.shape;
    let n = step.n_rows();
    let (nh, dk, lora, nr, nope, dv, w) = (s.n_head, s.dk(), s.kv_lora, s.rope, s.nope, s.dv, s.cache_width());
    if q.rows() != n || ckv.rows() != n || q.width != nh * dk || ckv.width != w || m.v_b.len() != nh {
        return Err(BackendError::Shape(format!("mla: q [{}, {}] and latent [{}, {}] for {n} rows of {nh} heads", q.rows(), q.width, ckv.rows(), ckv.width)));
    }
    let KAbsorb::PerHead(kb) = &m.k_absorb else {
        return Err(BackendError::Device(
            "this file's latent attention has the older combined attn_kv_b tensor, which the CUDA backend does not take (a current llama.cpp conversion writes attn_k_b/attn_v_b); use --backend cpu".into(),
        ));
    };
    if kb.len() != nh {
        return Err(BackendError::Shape(format!("mla: {} absorbed key matrices for {nh} heads", kb.len())));
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
    let mut c = act(be, n, lora)?;
    copy_cols(be, ckv, 0, &mut c, 0, lora)?;
    be.rms_norm_inplace(&mut c, &m.kv_a_norm, s.rms_eps)?;
    let mut k_pe = act(be, n, nr)?;
    copy_cols(be, ckv, lora, &mut k_pe, 0, nr)?;
    be.rope(step, &mut k_pe, nr, &rope)?;
    let mut rows = act(be, n, w)?;
    copy_cols(be, &c, 0, &mut rows, 0, lora)?;
    copy_cols(be, &k_pe, 0, &mut rows, lora, nr)?;
    // Queries [n, nh · w]: per head [k_b · q_nope | rope(q_pe)].
    let mut q_pe = act(be, n, nh * nr)?;
    for h in 0..nh {
        copy_cols(be, q, h * dk + nope, &mut q_pe, h * nr, nr)?;
    }
    be.rope(step, &mut q_pe, nr, &rope)?;
    let mut q_full = act(be, n, nh * w)?;
    for (h, kb) in kb.iter().enumerate() {
        let mut qn = act(be, n, nope)?;
        copy_cols(be, q, h * dk, &mut qn, 0, nope)?;
        let q_lat = be.mm(kb, &qn)?; // [n, kv_lora]
        copy_cols(be, &q_lat, 0, &mut q_full, h * w, lora)?;
        copy_cols(be, &q_pe, h * nr, &mut q_full, h * w + lora, nr)?;
    }
    // Store, then attend multi-query over the latent rows.
    let shape = AttnShape { n_head: nh, n_head_kv: 1, head_dim_k: w, head_dim_v: lora, kq_scale: s.kq_scale, window: None };
    let map = row_map(step, &shape, capacity)?;
    let slot = be.to_dev_memo("attn.slot", &map.slot)?;
    let (kc, f16) = match &mut step.kv {
        Kv::Contiguous { cache, .. } | Kv::Shared { cache, .. } => {
            let f16 = cache.f16;
            (&mut cache.layers[il].0, f16)
        }
        Kv::Paged { pool, .. } => (&mut pool.layers[il].0, true),
    };
    store(be, kc, f16, &rows, &slot)?;
    let lat = attend(be, &map, &q_full, (&*kc, &*kc, f16), &shape, w)?; // [n, nh · kv_lora]
    // Per head: the weighted latent through v_b → [n, nh · dv].
    let mut ctx = act(be, n, nh * dv)?;
    for (h, vb) in m.v_b.iter().enumerate() {
        let mut lh = act(be, n, lora)?;
        copy_cols(be, &lat, h * lora, &mut lh, 0, lora)?;
        let v = be.mm(vb, &lh)?; // [n, dv]
        copy_cols(be, &v, 0, &mut ctx, h * dv, dv)?;
    }
    Ok(ctx)
}
