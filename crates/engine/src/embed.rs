//! Embeddings: an encoder model with its WordPiece tokenizer, and a batching queue that
//! serves many callers through few forward passes.
//!
//! - [`Embedder`]: opens an encoder GGUF (`bert`, `nomic-bert`), tokenizes (`[CLS] … [SEP]`),
//!   validates token ids and lengths, and embeds many sequences per forward batch, cut
//!   into batches of at most [`Embedder::max_batch_tokens`] rows so activations stay
//!   bounded whatever the request.
//! - [`EmbedQueue`]: one worker thread owning an [`Embedder`]; callers submit a job (the
//!   token sequences of one request) and await its vectors. The worker takes every job
//!   waiting when it wakes (up to the batch budget) and runs them as one batch, so
//!   concurrent requests share matmuls instead of queueing one behind the other. A job is
//!   validated before it joins a batch: a bad request fails alone.
//! - [`matryoshka`]: truncation to the first `dims` values and renormalisation (the
//!   OpenAI `dimensions` parameter; meaningful for Matryoshka-trained models).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use jikji_gguf::{GgufError, GgufFile};
use jikji_models::{EmbeddingModel, EncoderParams, ModelError};
use jikji_tokenizer::{TokenizerError, WordPiece};

/// Rows of one forward batch when none is configured.
pub const DEFAULT_BATCH_TOKENS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot read model file {}", path.display())]
    File { path: PathBuf, source: GgufError },
    #[error("cannot build the tokenizer of {}", path.display())]
    Tokenizer { path: PathBuf, source: TokenizerError },
    #[error("{}: {source}", path.display())]
    Load { path: PathBuf, source: ModelError },
    #[error("input {index}: {reason}")]
    Input { index: usize, reason: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the embedding worker has stopped")]
    Closed,
}

/// An encoder model and its tokenizer.
pub struct Embedder {
    pub path: PathBuf,
    model: EmbeddingModel,
    tokenizer: WordPiece,
    max_batch_tokens: usize,
}

impl Embedder {
    /// Opens an encoder file: the GGUF, its WordPiece vocabulary and its weights.
    pub fn open(path: &Path) -> Result<Self, EmbedError> {
        let file = GgufFile::open(path).map_err(|source| EmbedError::File { path: path.into(), source })?;
        let file = Arc::new(file);
        let tokenizer = WordPiece::from_gguf(&file).map_err(|source| EmbedError::Tokenizer { path: path.into(), source })?;
        let model = EmbeddingModel::load(file).map_err(|source| EmbedError::Load { path: path.into(), source })?;
        if tokenizer.n_vocab() != model.params().n_vocab {
            return Err(EmbedError::Load { path: path.into(), source: ModelError::BadHparams("vocabulary and embedding table differ".into()) });
        }
        Ok(Embedder { path: path.into(), model, tokenizer, max_batch_tokens: DEFAULT_BATCH_TOKENS })
    }

    /// Whether `path` is a GGUF of an encoder architecture (cheap: reads the header).
    pub fn is_encoder_file(path: &Path) -> bool {
        GgufFile::open(path).map(|f| jikji_models::encoder::is_encoder(&f)).unwrap_or(false)
    }

    pub fn params(&self) -> &EncoderParams {
        self.model.params()
    }

    /// Width of the vectors.
    pub fn n_embd(&self) -> usize {
        self.params().n_embd
    }

    /// Longest token sequence accepted.
    pub fn n_ctx(&self) -> usize {
        self.params().n_ctx_train
    }

    pub fn n_vocab(&self) -> usize {
        self.params().n_vocab
    }

    pub fn tokenizer(&self) -> &WordPiece {
        &self.tokenizer
    }

    pub fn max_batch_tokens(&self) -> usize {
        self.max_batch_tokens
    }

    /// Sets the row budget of one forward batch (at least the context, so any valid
    /// sequence fits a batch).
    pub fn set_max_batch_tokens(&mut self, n: usize) {
        self.max_batch_tokens = n.max(self.n_ctx()).max(1);
    }

    /// `[CLS] text [SEP]` token ids.
    pub fn tokenize(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true)
    }

    /// Checks sequence `index`: non-empty, ids in range, within the context.
    pub fn check(&self, index: usize, seq: &[u32]) -> Result<(), EmbedError> {
        let bad = |reason: String| Err(EmbedError::Input { index, reason });
        if seq.is_empty() {
            return bad("no tokens".into());
        }
        if let Some(&t) = seq.iter().find(|&&t| t as usize >= self.n_vocab()) {
            return bad(format!("token id {t} is outside the vocabulary of {}", self.n_vocab()));
        }
        if seq.len() > self.n_ctx() {
            return bad(format!("{} tokens, the model accepts at most {}", seq.len(), self.n_ctx()));
        }
        Ok(())
    }

    /// One normalised vector per sequence; sequences are checked, then run in forward
    /// batches of at most `max_batch_tokens` rows.
    pub fn embed_tokens(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        for (i, s) in seqs.iter().enumerate() {
            self.check(i, s)?;
        }
        let mut out = Vec::with_capacity(seqs.len());
        let mut batch: Vec<&[u32]> = Vec::new();
        let mut rows = 0;
        for s in seqs {
            if !batch.is_empty() && rows + s.len() > self.max_batch_tokens {
                out.extend(self.model.embed(&batch)?);
                batch.clear();
                rows = 0;
            }
            batch.push(s);
            rows += s.len();
        }
        if !batch.is_empty() {
            out.extend(self.model.embed(&batch)?);
        }
        Ok(out)
    }

    /// Tokenizes and embeds `texts`.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let seqs: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect();
        self.embed_tokens(&seqs)
    }
}

/// The first `dims` values of `v`, renormalised to unit length (Matryoshka truncation).
pub fn matryoshka(v: &[f32], dims: usize) -> Vec<f32> {
    let mut t = v[..dims.min(v.len())].to_vec();
    jikji_models::encoder::normalize(&mut t);
    t
}

type Reply = tokio::sync::oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

struct Job {
    seqs: Vec<Vec<u32>>,
    reply: Reply,
}

/// A cloneable handle to the embedding worker.
#[derive(Clone)]
pub struct EmbedQueue {
    tx: mpsc::Sender<Job>,
    embedder: Arc<Embedder>,
}

impl EmbedQueue {
    /// Starts the worker thread that shares `embedder` (callers tokenize on their own
    /// threads through [`EmbedQueue::embedder`]; the worker only runs forward batches).
    pub fn start(embedder: Embedder) -> std::io::Result<EmbedQueue> {
        let (tx, rx) = mpsc::channel::<Job>();
        let embedder = Arc::new(embedder);
        let worker = embedder.clone();
        std::thread::Builder::new().name("jikji-embed".into()).spawn(move || run_worker(&worker, rx))?;
        Ok(EmbedQueue { tx, embedder })
    }

    /// The model and tokenizer behind the queue.
    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    /// Embeds one request's sequences (checked by the worker before batching).
    pub async fn embed(&self, seqs: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx.send(Job { seqs, reply }).map_err(|_| EmbedError::Closed)?;
        rx.await.map_err(|_| EmbedError::Closed)?
    }
}

fn run_worker(e: &Embedder, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut rows: usize = jobs[0].seqs.iter().map(Vec::len).sum();
        while rows < e.max_batch_tokens() {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.seqs.iter().map(Vec::len).sum::<usize>();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // A bad job fails alone; the good ones run as one batch.
        let mut good = Vec::with_capacity(jobs.len());
        for j in jobs {
            match j.seqs.iter().enumerate().try_for_each(|(i, s)| e.check(i, s)) {
                Ok(()) => good.push(j),
                Err(err) => {
                    let _ = j.reply.send(Err(err));
                }
            }
        }
        let all: Vec<Vec<u32>> = good.iter().flat_map(|j| j.seqs.iter().cloned()).collect();
        match e.embed_tokens(&all) {
            Ok(mut vecs) => {
                for j in good.into_iter().rev() {
                    let mine = vecs.split_off(vecs.len() - j.seqs.len());
                    let _ = j.reply.send(Ok(mine));
                }
            }
            Err(err) => {
                let msg = err.to_string();
                for j in good {
                    let _ = j.reply.send(Err(EmbedError::Model(ModelError::BadRequest(msg.clone()))));
                }
            }
        }
    }
}
