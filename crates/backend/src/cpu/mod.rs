//! The CPU backend: the reference every other backend is tested against.
//!
//! Weights stay in the file's type inside the mmap (a [`MatrixRef`] is its own handle:
//! nothing is copied or repacked at load); activations are host `Vec<f32>`s; the kernels
//! of `jikji-kernels` do the arithmetic, split over their persistent thread pool.
//!
//! Numerics are chosen here, per step:
//! - a contiguous cache (one sequence; [`crate::Step::serving`] false) gets llama.cpp's x86
//!   operation orders, which depend on the batch size (the golden-test path: bit-exact on
//!   the real models);
//! - a serving step over the paged pool gets batch-invariant orders (Q4_K/Q6_K through the
//!   invariant K-quant kernels, attention in one dot order for every row), so a
//!   sequence's logits are bit-identical whatever it was batched with.
//!
//! Files: `linear` (matrix products and activation quantizing), `attention` (contiguous
//! and paged), `mla` (latent attention), `moe` (routed experts), `rope`, `peer` (llama.cpp's
//! elementwise orders), `kv` (cache storage), `encoder` (layer norm, GELU, bidirectional
//! attention for embedding models).

mod attention;
mod encoder;
mod kv;
mod linear;
mod mla;
mod moe;
mod peer;
mod rope;

pub use kv::{CpuCache, CpuPool};

use crate::trace::trace;
use crate::{Activation, AttnShape, Backend, BackendError, Experts, Kv, KvType, MatrixRef, MlaAttend, Rope, Step};
use jikji_kernels::ops::{rms_norm_weighted, rms_norm_weighted_inplace};
use jikji_kernels::pool::for_rows_mut;

/// The CPU backend (stateless: the thread pool is the kernels crate's).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend;

/// A `[rows, width]` activation on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct Act {
    pub data: Vec<f32>, // [rows, width]
    pub width: usize,
}

impl Act {
    fn rows(&self) -> usize {
        self.data.len() / self.width.max(1)
    }
}

fn act(data: Vec<f32>, width: usize) -> Act {
    Act { data, width }
}

fn same_shape(op: &str, x: &Act, y: &Act) -> Result<(), BackendError> {
    if x.data.len() != y.data.len() || x.width != y.width {
        return Err(BackendError::Shape(format!("{op}: [{}, {}] and [{}, {}]", x.rows(), x.width, y.rows(), y.width)));
    }
    Ok(())
}

impl Backend for CpuBackend {
    type Matrix = MatrixRef;
    type Vector = Vec<f32>;
    type Act = Act;
    type Cache = CpuCache;
    type Pool = CpuPool;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn shared_steps(&self) -> bool {
        true
    }

    fn load_matrix(&self, m: &MatrixRef) -> Result<MatrixRef, BackendError> {
        Ok(m.clone())
    }

    fn load_vector(&self, v: Vec<f32>) -> Result<Vec<f32>, BackendError> {
        Ok(v)
    }

    fn upload(&self, data: &[f32], width: usize) -> Result<Act, BackendError> {
        if width == 0 || data.len() % width != 0 {
            return Err(BackendError::Shape(format!("upload: {} values in rows of {width}", data.len())));
        }
        Ok(act(data.to_vec(), width))
    }

    fn download(&self, x: &Act) -> Vec<f32> {
        x.data.clone()
    }

    fn shape(&self, x: &Act) -> (usize, usize) {
        (x.rows(), x.width)
    }

    fn select_rows(&self, x: &Act, rows: &[usize]) -> Result<Act, BackendError> {
        let n = x.rows();
        if let Some(&r) = rows.iter().find(|&&r| r >= n) {
            return Err(BackendError::Shape(format!("select_rows: row {r} of {n}")));
        }
        let w = x.width;
        let mut out = Vec::with_capacity(rows.len() * w);
        for &r in rows {
            out.extend_from_slice(&x.data[r * w..(r + 1) * w]);
        }
        Ok(act(out, w))
    }

    fn embed(&self, table: &MatrixRef, tokens: &[u32]) -> Result<Act, BackendError> {
        let n_embd = table.cols;
        let mut x = vec![0.0f32; tokens.len() * n_embd]; // [n_tokens, n_embd]
        let view = table.view();
        for (row, &t) in x.chunks_exact_mut(n_embd).zip(tokens) {
            jikji_kernels::get_row(&view, t as usize, row)?;
        }
        Ok(act(x, n_embd))
    }

    fn matmul(&self, step: &Step<Self>, ws: &[&MatrixRef], x: &Act) -> Result<Vec<Act>, BackendError> {
        if let Some(w) = ws.iter().find(|w| w.cols != x.width) {
            return Err(BackendError::Shape(format!("matmul: {} has {} columns, the input is {} wide", w.info.name, w.cols, x.width)));
        }
        let outs = linear::project_many(ws, &x.data, x.rows(), step.serving())?;
        Ok(outs.into_iter().zip(ws).map(|(y, w)| act(y, w.rows)).collect())
    }

    fn project_vocab(&self, w: &MatrixRef, x: &Act) -> Result<Act, BackendError> {
        if w.cols != x.width {
            return Err(BackendError::Shape(format!("vocabulary projection: {} columns, input {} wide", w.cols, x.width)));
        }
        Ok(act(linear::matmul_head(w, &x.data, x.rows())?, w.rows))
    }

    fn rms_norm(&self, x: &Act, w: &Vec<f32>, eps: f32) -> Result<Act, BackendError> {
        let mut out = vec![0.0f32; x.data.len()];
        rms_norm_weighted(&x.data, w, eps, &mut out)?;
        Ok(act(out, x.width))
    }

    fn rms_norm_inplace(&self, x: &mut Act, w: &Vec<f32>, eps: f32) -> Result<(), BackendError> {
        Ok(rms_norm_weighted_inplace(&mut x.data, w, eps)?)
    }

    fn add(&self, x: &mut Act, y: &Act) -> Result<(), BackendError> {
        same_shape("add", x, y)?;
        x.data.iter_mut().zip(&y.data).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn add_row(&self, x: &mut Act, bias: &Vec<f32>) -> Result<(), BackendError> {
        if bias.len() != x.width {
            return Err(BackendError::Shape(format!("add_row: bias of {} for rows of {}", bias.len(), x.width)));
        }
        for row in x.data.chunks_exact_mut(bias.len().max(1)) {
            row.iter_mut().zip(bias).for_each(|(a, c)| *a += c);
        }
        Ok(())
    }

    fn scale(&self, x: &mut Act, s: f32) -> Result<(), BackendError> {
        x.data.iter_mut().for_each(|v| *v *= s);
        Ok(())
    }

    fn rope(&self, step: &Step<Self>, x: &mut Act, head_dim: usize, r: &Rope) -> Result<(), BackendError> {
        if x.rows() != step.n_rows() {
            return Err(BackendError::Shape(format!("rope: {} rows for {} positions", x.rows(), step.n_rows())));
        }
        rope::apply(r, &mut x.data, head_dim, &step.positions)
    }

    fn glu(&self, gate: &mut Act, up: &Act, a: Activation) -> Result<(), BackendError> {
        same_shape("glu", gate, up)?;
        let n_ff = gate.width;
        let u = &up.data;
        // Row-wise, so the rows are split over the pool (same bits in any split).
        for_rows_mut(&mut gate.data, n_ff, 4, &|first, rows| {
            for (k, gr) in rows.chunks_exact_mut(n_ff).enumerate() {
                let ur = &u[(first + k) * n_ff..][..n_ff];
                match a {
                    Activation::Silu => peer::swiglu_row(gr, ur),
                    Activation::GeluTanh => peer::geglu_row(gr, ur),
                }
            }
        });
        Ok(())
    }

    fn attention(&self, step: &mut Step<Self>, il: usize, s: &AttnShape, q: &Act, k: &Act, v: &Act) -> Result<Act, BackendError> {
        let n = step.n_rows();
        let (kd, vd) = (s.n_head_kv * s.head_dim_k, s.n_head_kv * s.head_dim_v);
        if s.n_head_kv == 0 || s.n_head % s.n_head_kv != 0 || q.data.len() != n * s.n_head * s.head_dim_k || k.data.len() != n * kd || v.data.len() != n * vd {
            return Err(BackendError::Shape(format!("attention: q/k/v of {}/{}/{} values for {n} rows", q.data.len(), k.data.len(), v.data.len())));
        }
        let mut ctx = vec![0.0f32; n * s.n_head * s.head_dim_v]; // [n, n_head * head_dim_v]
        match &mut step.kv {
            Kv::Contiguous { cache, pos0 } => {
                let pos0 = *pos0;
                check_layer(il, cache.layers.len(), (cache.k_width, cache.v_width), (kd, vd))?;
                let f16_math = cache.ty == KvType::F16;
                let layer = &mut cache.layers[il];
                layer.k.write(pos0 * kd, &k.data);
                layer.v.write(pos0 * vd, &v.data);
                attention::attention(s, &q.data, layer, pos0, n, f16_math, &mut ctx);
            }
            Kv::Shared { cache, views } => {
                check_layer(il, cache.layers.len(), (cache.k_width, cache.v_width), (kd, vd))?;
                if views.len() != n || step.positions.len() != n {
                    return Err(BackendError::Shape(format!("attention: {} views and {} positions for {n} rows", views.len(), step.positions.len())));
                }
                let f16_math = cache.ty == KvType::F16;
                let layer = &mut cache.layers[il];
                for (r, view) in views.iter().enumerate() {
                    layer.k.write(view.cell * kd, &k.data[r * kd..(r + 1) * kd]);
                    layer.v.write(view.cell * vd, &v.data[r * vd..(r + 1) * vd]);
                }
                attention::attention_shared(s, &q.data, layer, &step.positions, views, f16_math, &mut ctx);
            }
            Kv::Paged { pool, seqs } => {
                check_layer(il, pool.layers.len(), (pool.k_width, pool.v_width), (kd, vd))?;
                let mut row = 0;
                for sq in seqs.iter() {
                    for pos in sq.pos0..sq.pos0 + sq.n_tokens {
                        pool.store(il, sq.blocks, pos, &k.data[row * kd..(row + 1) * kd], &v.data[row * vd..(row + 1) * vd]);
                        row += 1;
                    }
                }
                attention::attention_paged(s, &q.data, pool, il, seqs, &mut ctx);
            }
        }
        trace("kqv_out", Some(il), &ctx);
        Ok(act(ctx, s.n_head * s.head_dim_v))
    }

    fn mla_attention(&self, step: &mut Step<Self>, il: usize, m: &MlaAttend<Self>, q: &Act, ckv: &Act) -> Result<Act, BackendError> {
        let w = m.shape.cache_width();
        match &step.kv {
            Kv::Contiguous { cache, .. } => check_layer(il, cache.layers.len(), (cache.k_width, cache.v_width), (w, 0))?,
            Kv::Paged { pool, .. } => check_layer(il, pool.layers.len(), (pool.k_width, pool.v_width), (w, 0))?,
            Kv::Shared { .. } => return Err(BackendError::Device("multi-head latent attention has no shared-prefix steps".into())),
        }
        let inv = step.serving();
        let positions = std::mem::take(&mut step.positions);
        let r = mla::mla_attention(&mut step.kv, il, m, &q.data, &ckv.data, &positions, inv);
        step.positions = positions;
        Ok(act(r?, m.shape.n_head * m.shape.dv))
    }

    fn moe(&self, step: &Step<Self>, x: &Act, e: &Experts<Self>) -> Result<Act, BackendError> {
        if e.gate_inp.cols != x.width || e.experts.len() != e.routing.n_expert {
            return Err(BackendError::Shape(format!("moe: router of {} columns and {} experts for input {} wide", e.gate_inp.cols, e.experts.len(), x.width)));
        }
        Ok(act(moe::moe(&x.data, x.rows(), e, step.serving())?, x.width))
    }

    fn layer_norm_inplace(&self, x: &mut Act, w: &Vec<f32>, b: &Vec<f32>, eps: f32) -> Result<(), BackendError> {
        if w.len() != x.width {
            return Err(BackendError::Shape(format!("layer_norm: weight of {} for rows of {}", w.len(), x.width)));
        }
        encoder::layer_norm(&mut x.data, w, b, eps)
    }

    fn gelu_inplace(&self, x: &mut Act) -> Result<(), BackendError> {
        encoder::gelu_inplace(&mut x.data);
        Ok(())
    }

    fn attention_bidirectional(&self, s: &AttnShape, q: &Act, k: &Act, v: &Act, seq_lens: &[usize]) -> Result<Act, BackendError> {
        let out = encoder::attention(s, &q.data, &k.data, &v.data, seq_lens)?;
        Ok(act(out, s.n_head * s.head_dim_v))
    }

    fn new_cache(&self, n_layer: usize, n_ctx: usize, k_width: usize, v_width: usize, ty: KvType) -> Result<CpuCache, BackendError> {
        CpuCache::new(n_layer, n_ctx, k_width, v_width, ty)
    }

    fn new_pool(&self, n_layer: usize, n_blocks: usize, block_size: usize, k_width: usize, v_width: usize) -> Result<CpuPool, BackendError> {
        CpuPool::new(n_layer, n_blocks, block_size, k_width, v_width)
    }

    fn pool_block_bytes(&self, pool: &CpuPool) -> usize {
        pool.block_bytes()
    }
}

/// Layer `il` exists and the cache rows have the widths the step writes.
fn check_layer(il: usize, n_layer: usize, have: (usize, usize), want: (usize, usize)) -> Result<(), BackendError> {
    if il >= n_layer || have != want {
        return Err(BackendError::CacheMismatch(format!(
            "layer {il} of a cache of {n_layer} layers with widths {}/{}, the model writes {}/{}",
            have.0, have.1, want.0, want.1
        )));
    }
    Ok(())
}
