//! The serving engine: continuous batching over a paged, prefix-shared KV cache.
//!
//! One engine loop thread owns the model's KV pool and advances every running sequence
//! together: each step is one [`Model::forward_batch`] holding the decode row of every
//! sequence that is generating plus prefill chunks of newly admitted prompts (at most
//! [`ServeConfig::prefill_chunk`] prompt tokens per step), so the weights stream through
//! the caches once per step for all users. Between steps the loop admits queued requests,
//! drops cancelled ones and frees finished ones' blocks at once.
//!
//! Design choices:
//! - **Batch-invariant numerics.** The paged forward gives every row the same float order
//!   whatever the step holds, so a request's greedy output is the same alone or among 31
//!   others, and whatever its prompt's chunking. (This is also what makes prefix sharing
//!   exact: a cached block holds the very bits a recomputation would give.)
//! - **Blocks and prefix sharing** (`blocks.rs`): the pool is cut into blocks of
//!   `DEFAULT_KV_BLOCK` positions. A full block is named by a hash of (parent block's
//!   hash, its tokens), checked against the stored tokens on a hit; a new request reuses
//!   the cached full blocks of its prompt (reference counted) and prefills the rest, always
//!   computing at least its last prompt token (whose logits pick the first new token).
//!   Released blocks that hold a named prefix stay reusable until the pool needs them
//!   (least recently used first).
//! - **Admission by reservation**: a request is admitted when the pool can hold its whole
//!   budget (prompt + `max_tokens`, minus reused blocks) next to what the running ones may
//!   still claim, so a running sequence never waits for memory and nothing is preempted.
//! - **Streaming text** goes through the tokenizer's incremental decoder (never half a
//!   UTF-8 character) and a stop-string filter that holds back a possible stop prefix.
//! - **Failures are per request**: a failing (or panicking) forward step ends the
//!   requests of that step with [`GenEvent::Error`]; the loop keeps serving.
//! - Dropping a [`GenStream`] cancels its request; the loop notices before its next step.

mod blocks;
mod metrics;
mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use jikji_models::{Model, DEFAULT_KV_BLOCK};
use jikji_tokenizer::Tokenizer;
use tokio::sync::mpsc;

use crate::chat::{tokenize_chat_prompt, ChatFormatter};
use crate::grammar::{Constraint, GrammarCompiler, GrammarError, GrammarLimits};
use crate::sampler::{Sampler, SamplerConfig};
use crate::EngineError;

pub use metrics::{Histogram, MetricsSnapshot};

/// Most alternatives [`GenRequest::logprobs`] may ask for.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Engine settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// Per-sequence context limit (prompt + generated).
    pub n_ctx: usize,
    /// Most sequences decoded together (batch slots).
    pub parallel: usize,
    /// Waiting requests (beyond the running ones) before `SubmitError::QueueFull`.
    pub max_queue: usize,
    /// Total KV capacity in tokens shared by all sequences; further capped by
    /// `kv_memory_limit`.
    pub kv_tokens: usize,
    /// Prompt tokens prefilled per step (over all admitted prompts).
    pub prefill_chunk: usize,
    /// Compute threads (0 = the kernels' default: physical cores).
    pub threads: usize,
    /// Upper bound on the KV pool's bytes (it is allocated zeroed; pages are only touched
    /// as blocks are first used).
    pub kv_memory_limit: usize,
    /// Constrained sequences take the tokens their grammar forces without sampling them,
    /// all in the next step's rows (see the worker's docs).
    pub fast_forward: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        let (n_ctx, parallel) = (4096, 32);
        Self {
            n_ctx,
            parallel,
            max_queue: 256,
            kv_tokens: parallel * n_ctx,
            prefill_chunk: 512,
            threads: 0,
            kv_memory_limit: 2 << 30,
            fast_forward: true,
        }
    }
}

/// One generation request (token ids in, events out).
#[derive(Clone, Debug)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    /// At least 1; prompt + max_tokens must fit `n_ctx`.
    pub max_tokens: usize,
    pub sampling: SamplerConfig,
    /// Added to the logits of these ids before sampling.
    pub logit_bias: Vec<(u32, f32)>,
    /// Stop strings (not included in the output).
    pub stop: Vec<String>,
    /// `Some(k)`: the chosen token's log-probability plus the top `k` (≤ 20) alternatives.
    pub logprobs: Option<usize>,
    /// Keep generating past end-of-generation tokens (they are never sampled).
    pub ignore_eos: bool,
    /// Constrained decoding: every sampled token must keep the output inside this
    /// grammar (compiled with [`EngineHandle::grammar_compiler`]); the generation ends
    /// with `Stop` when the grammar is complete.
    pub grammar: Option<Constraint>,
    /// Write special (control) tokens into the text, as their token text. Tool-call
    /// parsers need this where a family's markers are control tokens (Mistral's
    /// `[TOOL_CALLS]`, Llama's `<|python_tag|>`); end-of-generation tokens still end the
    /// generation without text.
    pub special_text: bool,
}

impl GenRequest {
    /// Greedy, no stop strings, no logprobs.
    pub fn greedy(prompt: Vec<u32>, max_tokens: usize) -> Self {
        Self {
            prompt,
            max_tokens,
            sampling: SamplerConfig::greedy(),
            logit_bias: Vec::new(),
            stop: Vec::new(),
            logprobs: None,
            ignore_eos: false,
            grammar: None,
            special_text: false,
        }
    }
}

/// Why `submit` refused a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the queue is full; retry in {retry_after_secs} s")]
    QueueFull { retry_after_secs: u64 },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the prompt has {prompt} tokens; at most {limit} fit")]
    PromptTooLong { prompt: usize, limit: usize },
    #[error("{0}")]
    Invalid(String),
}

/// Log-probability of a sampled token and the most likely alternatives.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    /// `(token, bytes, logprob)`, most likely first.
    pub top: Vec<(String, Vec<u8>, f32)>,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` or the context.
    Length,
}

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache.
    pub cached_prompt_tokens: usize,
}

/// Events of one request, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum GenEvent {
    /// One sampled token; `text` is the UTF-8-safe new text (may be empty while a
    /// multi-byte character or a possible stop string is held back). When a generation
    /// ends at an end-of-generation token while text is still held back (a prefix of a
    /// stop string that never completed), one last `Token` carries the EOG id and that
    /// text; it is not counted in `Usage::completion_tokens`.
    Token { id: u32, text: String, logprob: Option<TokenLogprob> },
    Done { finish: FinishReason, usage: Usage },
    Error(String),
}

/// The events of one request. Dropping it cancels the request: the engine notices before
/// its next step and frees the sequence's KV blocks at once.
#[derive(Debug)]
pub struct GenStream {
    rx: mpsc::UnboundedReceiver<GenEvent>,
}

impl GenStream {
    /// The next event; `None` after `Done`/`Error` (or if the engine stopped).
    pub async fn next(&mut self) -> Option<GenEvent> {
        self.rx.recv().await
    }

    /// As [`GenStream::next`], blocking the thread (not for use inside an async runtime).
    pub fn blocking_next(&mut self) -> Option<GenEvent> {
        self.rx.blocking_recv()
    }
}

/// A request waiting for a batch slot.
pub(crate) struct Pending {
    pub(crate) req: GenRequest,
    pub(crate) sampler: Sampler,
    pub(crate) tx: mpsc::UnboundedSender<GenEvent>,
    pub(crate) submitted: Instant,
}

/// State shared by handles and the loop, under one lock.
pub(crate) struct Queue {
    pub(crate) waiting: VecDeque<Pending>,
    pub(crate) running: usize,
    pub(crate) shutting_down: bool,
    /// Every handle is gone: the loop exits.
    pub(crate) stop: bool,
}

pub(crate) struct Shared {
    pub(crate) model_id: String,
    pub(crate) cfg: ServeConfig,
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) chat: Option<ChatFormatter>,
    /// `general.architecture` of the file.
    pub(crate) architecture: String,
    pub(crate) n_vocab: usize,
    /// Blocks one sequence may hold at most, and the pool size.
    pub(crate) block_size: usize,
    pub(crate) n_blocks: usize,
    pub(crate) queue: Mutex<Queue>,
    pub(crate) wake: Condvar,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) blocks_used: AtomicUsize,
    pub(crate) loop_alive: AtomicBool,
    /// Built on first use (the vocabulary trie once per model), or why it cannot be.
    pub(crate) grammar: OnceLock<Result<Arc<GrammarCompiler>, GrammarError>>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Stops the loop when the last handle goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.lock().stop = true;
        self.0.wake.notify_all();
    }
}

/// Owns the model and the engine loop thread.
pub struct Engine;

impl Engine {
    /// Takes a loaded model, its tokenizer and chat formatter, allocates the KV pool and
    /// starts the loop thread.
    pub fn start(
        model: Arc<Model>,
        tokenizer: Arc<Tokenizer>,
        chat: Option<ChatFormatter>,
        model_id: String,
        cfg: ServeConfig,
    ) -> Result<EngineHandle, EngineError> {
        if cfg.n_ctx == 0 {
            return Err(EngineError::BadContextSize(0));
        }
        if cfg.parallel == 0 || cfg.prefill_chunk == 0 {
            return Err(EngineError::BadConfig(format!(
                "parallel ({}) and prefill_chunk ({}) must be at least 1",
                cfg.parallel, cfg.prefill_chunk
            )));
        }
        if cfg.threads > 0 {
            jikji_kernels::set_num_threads(cfg.threads);
        }
        let bs = DEFAULT_KV_BLOCK;
        let info = model.info();
        // The architecture decides what a position stores (e.g. MLA keeps one latent row):
        // measure it on a one-block pool.
        let bytes_per_token = (model.new_paged_kv(1, bs)?.block_bytes() / bs).max(1);
        let by_memory = cfg.kv_memory_limit / bytes_per_token;
        // At least one full-context sequence must fit.
        let kv_tokens = cfg.kv_tokens.min(by_memory).max(cfg.n_ctx);
        let n_blocks = kv_tokens.div_ceil(bs);
        let kv = model.new_paged_kv(n_blocks, bs)?;
        let architecture = model.file().get_str("general.architecture").ok().flatten().unwrap_or("").to_string();
        let shared = Arc::new(Shared {
            model_id,
            architecture,
            n_vocab: info.n_vocab,
            cfg,
            tokenizer,
            chat,
            block_size: bs,
            n_blocks,
            queue: Mutex::new(Queue { waiting: VecDeque::new(), running: 0, shutting_down: false, stop: false }),
            wake: Condvar::new(),
            metrics: metrics::Metrics::new(),
            blocks_used: AtomicUsize::new(0),
            loop_alive: AtomicBool::new(true),
            grammar: OnceLock::new(),
        });
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("jikji-engine".into())
            .spawn(move || worker::run(worker_shared, model, kv))
            .map_err(|e| EngineError::BadConfig(format!("cannot start the engine thread: {e}")))?;
        Ok(EngineHandle { _owner: Arc::new(Owner(shared.clone())), shared })
    }
}

/// A cheap, cloneable handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
    /// Held only so that dropping the last handle stops the loop.
    _owner: Arc<Owner>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").field("model_id", &self.shared.model_id).finish()
    }
}

impl EngineHandle {
    pub fn model_id(&self) -> &str {
        &self.shared.model_id
    }

    /// Per-sequence context limit ([`ServeConfig::n_ctx`]).
    pub fn n_ctx(&self) -> usize {
        self.shared.cfg.n_ctx
    }

    pub fn config(&self) -> &ServeConfig {
        &self.shared.cfg
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// Renders chat messages (an OpenAI `messages` array) with the model's template and
    /// tokenizes them llama.cpp-style.
    pub fn chat_prompt(&self, messages: &serde_json::Value, add_generation_prompt: bool) -> Result<Vec<u32>, EngineError> {
        let chat = self.shared.chat.as_ref().ok_or(EngineError::NoChatTemplate)?;
        let text = chat.render(messages, add_generation_prompt)?;
        tokenize_chat_prompt(&self.shared.tokenizer, &text)
    }

    /// As [`EngineHandle::chat_prompt`], with further template variables (`tools`, …).
    pub fn chat_prompt_with(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Vec<u32>, EngineError> {
        let chat = self.shared.chat.as_ref().ok_or(EngineError::NoChatTemplate)?;
        let text = chat.render_with(messages, add_generation_prompt, Some(extra))?;
        tokenize_chat_prompt(&self.shared.tokenizer, &text)
    }

    /// The chat template's source text (tool-call parsers pick their family from it).
    pub fn chat_template_source(&self) -> Option<&str> {
        self.shared.chat.as_ref().map(ChatFormatter::template_source)
    }

    /// The model file's `general.architecture`.
    pub fn architecture(&self) -> &str {
        &self.shared.architecture
    }

    /// The model's grammar compiler (its vocabulary trie is built on the first call and
    /// shared by every request after). Compiling is CPU work bounded by
    /// [`GrammarLimits`]: call it off async threads.
    pub fn grammar_compiler(&self) -> Result<Arc<GrammarCompiler>, GrammarError> {
        let sh = &self.shared;
        sh.grammar
            .get_or_init(|| {
                GrammarCompiler::new(sh.tokenizer.clone(), sh.n_vocab, GrammarLimits::default()).map(Arc::new)
            })
            .clone()
    }

    /// Tokens of a plain completion prompt (BOS per the model's `add_bos`, special tokens
    /// written in the text recognised, as llama.cpp's server does).
    pub fn completion_prompt(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        Ok(self.shared.tokenizer.encode(text, true, true)?)
    }

    /// Queues a generation. Errors at once if the queue is full, the engine is shutting
    /// down, or the request cannot fit (`n_ctx`, the KV pool) or is malformed.
    pub fn submit(&self, req: GenRequest) -> Result<GenStream, SubmitError> {
        let sh = &self.shared;
        let n_ctx = sh.cfg.n_ctx;
        if req.prompt.is_empty() {
            return Err(SubmitError::Invalid("the prompt is empty".into()));
        }
        if let Some(&t) = req.prompt.iter().find(|&&t| t as usize >= sh.n_vocab) {
            return Err(SubmitError::Invalid(format!("token id {t} is out of range (vocabulary size {})", sh.n_vocab)));
        }
        // The pool must hold the whole sequence too.
        let limit = n_ctx.min(sh.n_blocks * sh.block_size);
        if req.prompt.len() >= limit {
            return Err(SubmitError::PromptTooLong { prompt: req.prompt.len(), limit: limit.saturating_sub(1) });
        }
        if req.max_tokens == 0 {
            return Err(SubmitError::Invalid("max_tokens must be at least 1".into()));
        }
        if req.prompt.len().saturating_add(req.max_tokens) > limit {
            return Err(SubmitError::Invalid(format!(
                "max_tokens {} plus the prompt's {} tokens exceed the context of {limit}",
                req.max_tokens,
                req.prompt.len()
            )));
        }
        if let Some(k) = req.logprobs {
            if k > MAX_TOP_LOGPROBS {
                return Err(SubmitError::Invalid(format!("logprobs {k} is above the limit of {MAX_TOP_LOGPROBS}")));
            }
        }
        if let Some((id, b)) = req.logit_bias.iter().find(|(id, b)| *id as usize >= sh.n_vocab || b.is_nan()) {
            return Err(SubmitError::Invalid(format!("logit_bias entry {id}: {b} is not a valid token id and bias")));
        }
        if let Some(g) = &req.grammar {
            if g.n_rows() != sh.n_vocab {
                return Err(SubmitError::Invalid("the grammar was compiled for another vocabulary".into()));
            }
        }
        let sampler = Sampler::new(req.sampling.clone()).map_err(|e| SubmitError::Invalid(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut q = sh.lock();
            if q.shutting_down || q.stop {
                return Err(SubmitError::ShuttingDown);
            }
            if !sh.loop_alive.load(Ordering::Relaxed) {
                return Err(SubmitError::ShuttingDown);
            }
            // Cancelled requests still in the queue do not count.
            let before = q.waiting.len();
            q.waiting.retain(|p| !p.tx.is_closed());
            let dropped = (before - q.waiting.len()) as u64;
            if dropped > 0 {
                sh.metrics.update(|c| c.cancelled += dropped);
            }
            if q.waiting.len() >= sh.cfg.max_queue {
                let per_slot = q.waiting.len() / sh.cfg.parallel.max(1);
                return Err(SubmitError::QueueFull { retry_after_secs: (1 + per_slot as u64).min(60) });
            }
            q.waiting.push_back(Pending { req, sampler, tx, submitted: Instant::now() });
        }
        sh.wake.notify_all();
        Ok(GenStream { rx })
    }

    /// Counters and gauges for `/metrics` and tests.
    pub fn metrics(&self) -> MetricsSnapshot {
        let sh = &self.shared;
        let (queue_depth, running) = {
            let q = sh.lock();
            (q.waiting.len(), q.running)
        };
        sh.metrics.snapshot(queue_depth, running, sh.blocks_used.load(Ordering::Relaxed), sh.n_blocks)
    }

    /// Stops admitting work (`submit` → `SubmitError::ShuttingDown`); queued and running
    /// requests continue.
    pub fn begin_shutdown(&self) {
        self.shared.lock().shutting_down = true;
    }

    /// Number of sequences queued + running.
    pub fn in_flight(&self) -> usize {
        let q = self.shared.lock();
        q.waiting.len() + q.running
    }

    /// KV pool geometry: (blocks, positions per block).
    pub fn kv_geometry(&self) -> (usize, usize) {
        (self.shared.n_blocks, self.shared.block_size)
    }
}
