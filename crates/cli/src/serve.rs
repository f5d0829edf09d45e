//! `jikji serve`: load a model, start the serving engine, and serve the OpenAI-compatible
//! API until SIGTERM/SIGINT, then drain and exit 0.
//!
//! The served model id (what clients put in `model`) is the catalog name when `-m` is one,
//! else the file stem; the file name, the stem and the `-m` argument as given are accepted
//! as aliases. The web chat page is
//! served at `/` unless `--no-ui`.
//!
//! Several models: `-m A -m B` serves both from one process, each with its own engine
//! (batch slots, queue, KV pool), routed by the request's `model`; a request without one
//! goes to the first model. Per-model options pair by position: the n-th `--model-alias`
//! names the n-th `-m` (it becomes the id clients see; the catalog name and file stem stay
//! accepted), and `--ctx` / `--kv-tokens` take either one value for every model or one per
//! model in `-m` order. The KV pool's memory cap (2 GiB) is split evenly between the
//! models, so serving two models never takes more cache memory than serving one.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use jikji_engine::embed::{EmbedQueue, Embedder};
use jikji_engine::serve::{Engine, EngineHandle, ServeConfig};
use jikji_engine::{ChatFormatter, Opened};
use jikji_server::audit::{AuditLog, Rotation};
use jikji_server::keys::KeyRing;
use jikji_server::{ApiKeys, AppState, EmbedModel, Limits, Models, ServeOptions, ServedModel, ServerConfig, TlsFiles};

/// Options of `jikji serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Catalog name or path to a .gguf file; repeat to serve several models.
    #[arg(short = 'm', long = "model", required = true)]
    model: Vec<String>,
    /// The name clients use for a model (its id in /v1/models and replies); repeatable,
    /// paired by position: the n-th alias names the n-th `-m`.
    #[arg(long = "model-alias")]
    model_alias: Vec<String>,
    /// A Jinja chat template file used instead of the model's own (a file without one, or
    /// a family's template for a tiny test model); repeatable, paired by position with
    /// `-m` like `--model-alias`. Tool calling picks its syntax from the template used.
    #[arg(long = "chat-template")]
    chat_template: Vec<PathBuf>,
    /// Address to bind. The default serves this machine only; use 0.0.0.0 to open it to
    /// the network (set API keys and TLS then).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// File of API keys, one per line (`#` comments). Keys may also come from
    /// JIKJI_API_KEYS (comma-separated). With any key set, every route but /health needs one.
    #[arg(long = "api-key-file")]
    api_key_file: Option<PathBuf>,
    /// Sequences decoded together (batch slots).
    #[arg(long, default_value_t = 32)]
    parallel: usize,
    /// Context size per sequence (prompt + generated) [default: the model's training
    /// context, at most 4096]. One value for all models, or one per `-m` in order.
    #[arg(long = "ctx", short = 'c')]
    ctx: Vec<usize>,
    /// Total KV-cache capacity in tokens shared by a model's sequences [default: parallel
    /// × ctx; the engine caps the pool's memory in any case]. One value for all models, or
    /// one per `-m` in order.
    #[arg(long = "kv-tokens")]
    kv_tokens: Vec<usize>,
    /// Rows (tokens) of one encoder forward batch, for embedding models [default: 4096,
    /// at least the model's context].
    #[arg(long = "embed-batch-tokens")]
    embed_batch_tokens: Option<usize>,
    /// Requests allowed to wait beyond the batch slots before 429s.
    #[arg(long = "max-queue", default_value_t = 256)]
    max_queue: usize,
    /// Compute threads [default: available parallelism].
    #[arg(long, short = 't')]
    threads: Option<usize>,
    /// Where the model computes: cpu, vulkan, cuda (a build with `--features cuda`) or
    /// auto (a GPU when there is one, else the CPU); `jikji devices` lists them.
    #[arg(long, default_value = "cpu", value_parser = crate::devices::parse_backend)]
    backend: jikji_engine::BackendKind,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long = "tls-cert", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long = "tls-key", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds in-flight requests may run after SIGTERM/SIGINT before the server exits.
    #[arg(long = "shutdown-timeout", default_value_t = 30)]
    shutdown_timeout: u64,
    /// Largest request body in bytes.
    #[arg(long = "max-body-bytes", default_value_t = 8 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Allow browser requests from this origin (repeatable; `*` for any). CORS is off
    /// without it.
    #[arg(long = "cors-origin")]
    cors_origin: Vec<String>,
    /// Do not serve the web chat page at `/` (the API only).
    #[arg(long = "no-ui")]
    no_ui: bool,
    /// Sample every token of a constrained reply, even those its grammar forces (by
    /// default forced tokens are taken without sampling, several per step).
    #[arg(long = "no-fast-forward")]
    no_fast_forward: bool,
    /// Keys with scopes and limits (TOML; `jikji keys add` writes it). Reloaded on SIGHUP
    /// and when it changes; works beside --api-key-file / JIKJI_API_KEYS.
    #[arg(long = "keys-file")]
    keys_file: Option<PathBuf>,
    /// Write one JSON line per request to this file (no prompt or output text unless
    /// --audit-content).
    #[arg(long = "audit-log")]
    audit_log: Option<PathBuf>,
    /// Also write prompts and outputs to the audit log.
    #[arg(long = "audit-content", requires = "audit_log")]
    audit_content: bool,
    /// Rotate the audit log when it would exceed this many bytes.
    #[arg(long = "audit-max-bytes", default_value_t = 100 * 1024 * 1024)]
    audit_max_bytes: u64,
    /// Rotated audit logs kept (PATH.1 … PATH.N).
    #[arg(long = "audit-keep", default_value_t = 5)]
    audit_keep: usize,
}

fn model_id(arg: &str, path: &Path) -> String {
    if jikji_catalog::lookup(arg).is_some() || jikji_catalog::lookup_dir(arg).is_some() {
        return arg.to_string();
    }
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| arg.to_string())
}

fn api_keys(file: Option<&Path>) -> Result<ApiKeys> {
    let mut keys = ApiKeys::none();
    if let Some(f) = file {
        keys.add_file(f)?;
    }
    if let Ok(env) = std::env::var("JIKJI_API_KEYS") {
        keys.add_from_text(&env, "JIKJI_API_KEYS")?;
    }
    Ok(keys)
}

/// A per-model option: none (the default for all), one value (for all), or one per model.
fn per_model(values: &[usize], n_models: usize, flag: &str) -> Result<Vec<Option<usize>>> {
    match values.len() {
        0 => Ok(vec![None; n_models]),
        1 => Ok(vec![Some(values[0]); n_models]),
        n if n == n_models => Ok(values.iter().copied().map(Some).collect()),
        n => bail!("{n} {flag} values for {n_models} models: give one for all or one per -m"),
    }
}

/// Loads one model and starts its engine; returns it with its id and context (for the
/// banner).
fn start_model(
    args: &ServeArgs,
    arg: &str,
    alias: Option<&str>,
    template: Option<&Path>,
    ctx: Option<usize>,
    kv_tokens: Option<usize>,
    kv_memory_limit: usize,
) -> Result<(ServedModel, (String, usize, &'static str))> {
    let file = jikji_catalog::resolve(arg)?;
    if Embedder::is_encoder_file(&file) {
        return start_encoder(args, arg, &file, alias);
    }
    let opened = crate::commands::open_model(arg, ctx, args.backend)?;
    let chat = match template {
        Some(t) => {
            let src = read_template(t)?;
            ChatFormatter::new(&src, &opened.tokenizer).with_context(|| format!("cannot use the chat template {}", t.display()))?
        }
        None => ChatFormatter::from_gguf(&opened.file)
            .with_context(|| format!("cannot use the chat template of {}", opened.path.display()))?,
    };
    let Opened { path, tokenizer, model, n_ctx, .. } = opened;
    let backend = model.backend();
    let kv_tokens = match kv_tokens {
        Some(0) => bail!("--kv-tokens must be at least 1"),
        Some(k) => k,
        None => args.parallel.saturating_mul(n_ctx),
    };
    let (id, aliases) = served_names(arg, &path, alias);
    let cfg = ServeConfig {
        n_ctx,
        parallel: args.parallel,
        max_queue: args.max_queue,
        kv_tokens,
        threads: args.threads.unwrap_or(0),
        kv_memory_limit,
        fast_forward: !args.no_fast_forward,
        ..ServeConfig::default()
    };
    let engine: EngineHandle = Engine::start(Arc::new(model), Arc::new(tokenizer), Some(chat), id.clone(), cfg)
        .with_context(|| format!("cannot start the serving engine of {id}"))?;
    Ok((ServedModel::generate(engine, aliases), (id, n_ctx, backend)))
}

/// The id clients see and the other names a model answers to: the catalog name or file
/// stem, the file name, and the `-m` argument exactly as given (a path, as vLLM serves it),
/// so a client that sends back what it was started with is routed. `--model-alias`, when
/// given, becomes the id and the others stay accepted.
fn served_names(arg: &str, path: &Path, alias: Option<&str>) -> (String, Vec<String>) {
    let natural = model_id(arg, path);
    let id = alias.map(str::to_string).unwrap_or_else(|| natural.clone());
    let mut aliases = vec![natural];
    if let Some(stem) = path.file_stem() {
        aliases.push(stem.to_string_lossy().into_owned());
    }
    if let Some(name) = path.file_name() {
        aliases.push(name.to_string_lossy().into_owned());
    }
    aliases.push(arg.to_string());
    aliases.push(path.to_string_lossy().into_owned());
    (id, aliases)
}

/// Largest chat template file read by `--chat-template`.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

fn read_template(path: &Path) -> Result<String> {
    let len = std::fs::metadata(path).with_context(|| format!("cannot read --chat-template {}", path.display()))?.len();
    if len > MAX_TEMPLATE_BYTES {
        bail!("--chat-template {} is {len} bytes; at most {MAX_TEMPLATE_BYTES} are allowed", path.display());
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read --chat-template {}", path.display()))
}

/// Opens an encoder and starts its batching queue. Matryoshka truncation (`dimensions`)
/// is offered for `nomic-bert` models (nomic-embed-text-v1.5 was trained for it).
/// Encoders run on the CPU backend whatever `--backend` says (the GPU backends have no
/// encoder kernels yet); the banner says so.
fn start_encoder(
    args: &ServeArgs,
    arg: &str,
    path: &Path,
    alias: Option<&str>,
) -> Result<(ServedModel, (String, usize, &'static str))> {
    let mut e = Embedder::open(path).with_context(|| format!("cannot open {} as an embedding model", path.display()))?;
    if let Some(n) = args.embed_batch_tokens {
        e.set_max_batch_tokens(n);
    }
    let (id, aliases) = served_names(arg, path, alias);
    let n_ctx = e.n_ctx();
    let matryoshka = e.params().arch == "nomic-bert";
    let queue = EmbedQueue::start(e).with_context(|| format!("cannot start the embedding worker of {id}"))?;
    Ok((ServedModel::embed(id.clone(), EmbedModel { queue, matryoshka }, aliases), (id, n_ctx, "cpu")))
}

pub fn serve(args: ServeArgs) -> Result<()> {
    if args.parallel == 0 {
        bail!("--parallel must be at least 1");
    }
    if args.max_body_bytes == 0 {
        bail!("--max-body-bytes must be at least 1");
    }
    crate::commands::set_threads(args.threads)?;
    let keys = api_keys(args.api_key_file.as_deref())?;
    let ring = Arc::new(KeyRing::new(args.keys_file.as_deref(), &keys)?);
    let audit = match &args.audit_log {
        Some(p) => {
            let rot = Rotation { max_bytes: args.audit_max_bytes.max(1), keep: args.audit_keep };
            let log = AuditLog::open(p, rot, args.audit_content)
                .with_context(|| format!("cannot open the audit log {}", p.display()))?;
            Some(Arc::new(log))
        }
        None => None,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
        _ => None,
    };
    if let Some(files) = &tls {
        // Fail before loading the model if the certificate or key is unusable.
        jikji_server::tls_config(files)?;
    }

    let n_models = args.model.len();
    if args.chat_template.len() > n_models {
        bail!("{} --chat-template values for {n_models} model(s): the n-th names the n-th -m's template", args.chat_template.len());
    }
    if args.model_alias.len() > n_models {
        bail!("{} --model-alias values for {n_models} model(s): the n-th alias names the n-th -m", args.model_alias.len());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = args.model_alias.iter().find(|a| !seen.insert(a.as_str())) {
        bail!("the name `{dup}` is given to two models; give each model its own --model-alias");
    }
    let ctx = per_model(&args.ctx, n_models, "--ctx")?;
    let kv = per_model(&args.kv_tokens, n_models, "--kv-tokens")?;
    let kv_memory_limit = ServeConfig::default().kv_memory_limit / n_models;
    let mut served = Vec::with_capacity(n_models);
    let mut banners = Vec::with_capacity(n_models);
    for (i, arg) in args.model.iter().enumerate() {
        let alias = args.model_alias.get(i).map(String::as_str);
        let template = args.chat_template.get(i).map(PathBuf::as_path);
        let (m, banner) = start_model(&args, arg, alias, template, ctx[i], kv[i], kv_memory_limit)?;
        served.push(m);
        banners.push(banner);
    }
    let models = Models::new(served)?;

    let config = ServerConfig {
        api_keys: keys,
        limits: Limits { max_body_bytes: args.max_body_bytes, ..Limits::default() },
        cors_origins: args.cors_origin.clone(),
        model_aliases: Vec::new(),
        web_ui: !args.no_ui,
        keys: Some(ring.clone()),
        audit: audit.clone(),
    };
    let n_keys = ring.len();
    let state = AppState::with_models(models, config);
    let opts = ServeOptions {
        addr: SocketAddr::new(args.host, args.port),
        tls: tls.clone(),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        jikji_server::keys::reload::spawn(ring.clone());
        jikji_server::serve(state, opts, jikji_server::shutdown_signal(), |addr| {
        let keys = if ring.is_open() { "no API key".to_string() } else { format!("{n_keys} API key(s)") };
        for (id, n_ctx, backend) in &banners {
            eprintln!("jikji serve: {id} on {scheme}://{addr} (ctx {n_ctx}, parallel {}, {keys}, backend {backend})", args.parallel);
        }
        if !args.no_ui {
            eprintln!("jikji serve: chat page at {scheme}://{addr}/");
        }
        })
        .await
    });
    if let Some(a) = &audit {
        a.close();
    }
    let report = report?;
    if report.drained {
        eprintln!("jikji serve: shut down after finishing all requests");
    } else {
        eprintln!("jikji serve: shut down at the timeout with {} request(s) unfinished", report.abandoned);
    }
    Ok(())
}
