//! `tokenizer.json` (+ `tokenizer_config.json`) → the `tokenizer.ggml.*` keys jikji's
//! tokenizers read, as llama.cpp's converter writes them. Only tokenizers our code
//! reproduces exactly are accepted; anything else is refused by name rather than
//! approximated.
//!
//! - Byte-level BPE (`model.type = "BPE"`, no byte fallback) → `gpt2`. The pre-tokenizer
//!   decides `tokenizer.ggml.pre`, by structure instead of llama.cpp's hash of sample
//!   ids: `ByteLevel` with its own regex is GPT-2's (`gpt-2`); a `Split` on Llama-3's or
//!   Qwen2's expression followed by `ByteLevel` without regex is `llama-bpe` or `qwen2`.
//!   The normaliser must be absent (Qwen2's `NFC` is accepted: llama.cpp does not apply
//!   it either, so ids differ from transformers only on text that is not NFC already).
//! - WordPiece (`model.type = "WordPiece"`, `##` continuations) with BERT's normaliser and
//!   pre-tokenizer → `bert`, the vocabulary spelled as llama.cpp spells it (`▁word`,
//!   `piece`, `[SPECIAL]`), and `jikji.wordpiece.normalizer = "huggingface"` so
//!   [`jikji_tokenizer::WordPiece`] normalises as transformers does (full NFD, full
//!   lowercase, the 100-character word limit) rather than as llama.cpp's WPM does.
//! - Ids: tokens by id from `model.vocab` and `added_tokens`; rows of the embedding
//!   table beyond the tokenizer become `[PAD<i>]` (UNUSED), as the converter pads them;
//!   added special tokens are CONTROL, other added tokens USER_DEFINED. BOS/EOS/PAD/UNK
//!   come from `tokenizer_config.json` (`bos_token`, … as text), falling back to
//!   `config.json`'s ids; `add_bos_token` from `tokenizer_config.json`, else whether the
//!   post-processor's template starts with the BOS token.
//! - The chat template: `tokenizer_config.json`'s `chat_template` (a string, or the
//!   `default` entry of a list), else `chat_template.jinja`.

use std::collections::HashMap;
use std::path::Path;

use jikji_gguf::{GgufWriter, Value};
use serde_json::Value as Json;

use crate::{read_json, HfError};

const TT_NORMAL: i32 = 1;
const TT_CONTROL: i32 = 3;
const TT_USER_DEFINED: i32 = 4;
const TT_UNUSED: i32 = 5;

/// Llama-3's and Qwen2's split expressions as transformers' `tokenizer.json` spells them.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn tok_err(msg: impl Into<String>) -> HfError {
    HfError::Tokenizer(msg.into())
}

/// The parts of a directory's tokenizer files the conversion reads.
struct Files {
    tj: Json,
    tc: Json,
}

/// A special token's text in `tokenizer_config.json`: a string or `{"content": …}`.
fn token_text(v: Option<&Json>) -> Option<&str> {
    match v? {
        Json::String(s) => Some(s),
        o => o.get("content")?.as_str(),
    }
}

/// Texts of every id: `model.vocab` and `added_tokens` merged; `(texts, added: id → special)`.
fn id_table(tj: &Json, n_rows: usize) -> Result<(Vec<Option<String>>, HashMap<usize, bool>), HfError> {
    let vocab = tj.pointer("/model/vocab").and_then(Json::as_object).ok_or_else(|| tok_err("tokenizer.json: no `model.vocab` object"))?;
    let mut added = HashMap::new();
    let mut pairs: Vec<(String, u64)> = Vec::with_capacity(vocab.len());
    for (t, id) in vocab {
        pairs.push((t.clone(), id.as_u64().ok_or_else(|| tok_err(format!("tokenizer.json: `{t}` has a non-integer id")))?));
    }
    for a in tj.get("added_tokens").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let (Some(t), Some(id)) = (a.get("content").and_then(Json::as_str), a.get("id").and_then(Json::as_u64)) else {
            return Err(tok_err("tokenizer.json: an added token without `content` and `id`"));
        };
        added.insert(id as usize, a.get("special").and_then(Json::as_bool).unwrap_or(false));
        pairs.push((t.to_string(), id));
    }
    let max = pairs.iter().map(|p| p.1).max().unwrap_or(0) as usize;
    if max >= n_rows {
        return Err(tok_err(format!("tokenizer.json has token id {max}, but config.json's vocab_size is {n_rows}")));
    }
    let mut texts: Vec<Option<String>> = vec![None; n_rows];
    for (t, id) in pairs {
        let slot = &mut texts[id as usize];
        if slot.as_ref().is_some_and(|old| *old != t) {
            return Err(tok_err(format!("tokenizer.json: id {id} is both `{}` and `{t}`", slot.as_deref().unwrap_or(""))));
        }
        *slot = Some(t);
    }
    Ok((texts, added))
}

/// An added token that is not flagged special but is spelled like a control token
/// (`<|…|>`, DeepSeek's `<｜…｜>`): llama.cpp's converter makes these CONTROL too.
fn looks_special(t: &str) -> bool {
    (t.starts_with("<|") && t.ends_with("|>")) || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
}

fn id_of(texts: &[Option<String>], t: &str) -> Option<u32> {
    texts.iter().position(|x| x.as_deref() == Some(t)).map(|i| i as u32)
}

/// `tokenizer.ggml.pre` for a byte-level BPE tokenizer.json.
fn bpe_pre(tj: &Json) -> Result<&'static str, HfError> {
    let pt = tj.get("pre_tokenizer").unwrap_or(&Json::Null);
    let kind = |v: &Json| v.get("type").and_then(Json::as_str).unwrap_or("").to_string();
    let regex_on = |v: &Json| v.get("use_regex").and_then(Json::as_bool).unwrap_or(true);
    match kind(pt).as_str() {
        "ByteLevel" if regex_on(pt) => return Ok("gpt-2"),
        "Sequence" => {
            let steps = pt.get("pretokenizers").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]);
            if let [split, bl] = steps {
                let pattern = split.pointer("/pattern/Regex").and_then(Json::as_str);
                let isolated = split.get("behavior").and_then(Json::as_str) == Some("Isolated");
                if kind(split) == "Split" && isolated && kind(bl) == "ByteLevel" && !regex_on(bl) {
                    match pattern {
                        Some(LLAMA3_SPLIT) => return Ok("llama-bpe"),
                        Some(QWEN2_SPLIT) => return Ok("qwen2"),
                        _ => {}
                    }
                }
            }
        }
        _ => {}
    }
    Err(HfError::Unsupported(format!(
        "tokenizer.json: byte-level BPE pre-tokenizer {} (supported: GPT-2's ByteLevel, Llama-3's and Qwen2's Split + ByteLevel)",
        serde_json::to_string(pt).unwrap_or_default().chars().take(200).collect::<String>()
    )))
}

/// Whether the post-processor's single-sequence template starts with token `bos`.
fn template_adds(tj: &Json, bos: &str) -> bool {
    let first = tj.pointer("/post_processor/single/0/SpecialToken/id").and_then(Json::as_str);
    let seq_first = tj
        .pointer("/post_processor/processors")
        .and_then(Json::as_array)
        .and_then(|ps| ps.iter().find_map(|p| p.pointer("/single/0/SpecialToken/id").and_then(Json::as_str)));
    first.or(seq_first) == Some(bos)
}

/// The chat template of the directory, if any.
fn chat_template(dir: &Path, tc: &Json) -> Result<Option<String>, HfError> {
    match tc.get("chat_template") {
        Some(Json::String(s)) => return Ok(Some(s.clone())),
        Some(Json::Array(list)) => {
            let named = |n: &str| list.iter().find(|e| e.get("name").and_then(Json::as_str) == Some(n));
            if let Some(t) = named("default").and_then(|e| e.get("template")).and_then(Json::as_str) {
                return Ok(Some(t.to_string()));
            }
        }
        _ => {}
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja).map(Some).map_err(|source| HfError::Io { path: jinja, source });
    }
    Ok(None)
}

fn files(dir: &Path) -> Result<Files, HfError> {
    let tj = read_json(&dir.join("tokenizer.json"))?;
    let tcp = dir.join("tokenizer_config.json");
    let tc = if tcp.is_file() { read_json(&tcp)? } else { Json::Null };
    Ok(Files { tj, tc })
}

/// Writes a decoder's byte-level BPE vocabulary and chat template. `n_rows` is the
/// embedding table's row count; `cfg_bos`/`cfg_eos` are config.json's ids.
pub fn write_bpe(dir: &Path, n_rows: usize, cfg_bos: Option<u32>, cfg_eos: Option<u32>, w: &mut GgufWriter) -> Result<(), HfError> {
    let Files { tj, tc } = files(dir)?;
    let model = tj.get("model").unwrap_or(&Json::Null);
    let mtype = model.get("type").and_then(Json::as_str).unwrap_or("");
    if mtype != "BPE" || model.get("byte_fallback").and_then(Json::as_bool).unwrap_or(false) {
        return Err(HfError::Unsupported(format!("tokenizer.json: model `{mtype}` (decoders: byte-level BPE without byte fallback)")));
    }
    match tj.get("normalizer") {
        None | Some(Json::Null) => {}
        Some(n) if n.get("type").and_then(Json::as_str) == Some("NFC") => {}
        Some(n) => return Err(HfError::Unsupported(format!("tokenizer.json: normalizer {}", n.get("type").and_then(Json::as_str).unwrap_or("?")))),
    }
    let pre = bpe_pre(&tj)?;
    let (texts, added) = id_table(&tj, n_rows)?;
    let mut tokens = Vec::with_capacity(n_rows);
    let mut types = Vec::with_capacity(n_rows);
    for (i, t) in texts.iter().enumerate() {
        match t {
            None => {
                tokens.push(Value::String(format!("[PAD{i}]")));
                types.push(Value::I32(TT_UNUSED));
            }
            Some(t) => {
                tokens.push(Value::String(t.clone()));
                types.push(Value::I32(match added.get(&i) {
                    Some(true) => TT_CONTROL,
                    Some(false) if looks_special(t) => TT_CONTROL,
                    Some(false) => TT_USER_DEFINED,
                    None => TT_NORMAL,
                }));
            }
        }
    }
    let mut merges = Vec::new();
    for m in model.get("merges").and_then(Json::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let s = match m {
            Json::String(s) => s.clone(),
            Json::Array(p) => match p.as_slice() {
                [Json::String(a), Json::String(b)] => format!("{a} {b}"),
                _ => return Err(tok_err("tokenizer.json: a merge that is not a pair of strings")),
            },
            _ => return Err(tok_err("tokenizer.json: a merge that is not a string or pair")),
        };
        merges.push(Value::String(s));
    }
    w.add_kv("tokenizer.ggml.model", "gpt2");
    w.add_kv("tokenizer.ggml.pre", pre);
    w.add_kv("tokenizer.ggml.tokens", Value::Array(tokens));
    w.add_kv("tokenizer.ggml.token_type", Value::Array(types));
    w.add_kv("tokenizer.ggml.merges", Value::Array(merges));
    let special = |key: &str| token_text(tc.get(key)).and_then(|t| id_of(&texts, t));
    let bos = special("bos_token").or(cfg_bos);
    let eos = special("eos_token").or(cfg_eos);
    for (key, id) in [("bos", bos), ("eos", eos), ("padding", special("pad_token")), ("unknown", special("unk_token"))] {
        if let Some(id) = id {
            w.add_kv(format!("tokenizer.ggml.{key}_token_id"), Value::U32(id));
        }
    }
    let add_bos = match tc.get("add_bos_token").and_then(Json::as_bool) {
        Some(b) => b,
        None => bos.and_then(|b| texts[b as usize].as_deref()).is_some_and(|t| template_adds(&tj, t)),
    };
    w.add_kv("tokenizer.ggml.add_bos_token", add_bos);
    if let Some(t) = chat_template(dir, &tc)? {
        w.add_kv("tokenizer.chat_template", t);
    }
    Ok(())
}

/// Writes an encoder's WordPiece vocabulary (`n_rows` embedding rows).
pub fn write_wordpiece(dir: &Path, n_rows: usize, w: &mut GgufWriter) -> Result<(), HfError> {
    let Files { tj, tc } = files(dir)?;
    let model = tj.get("model").unwrap_or(&Json::Null);
    let mtype = model.get("type").and_then(Json::as_str).unwrap_or("");
    let prefix = model.get("continuing_subword_prefix").and_then(Json::as_str).unwrap_or("##");
    if mtype != "WordPiece" || prefix != "##" {
        return Err(HfError::Unsupported(format!("tokenizer.json: model `{mtype}` with prefix `{prefix}` (encoders: WordPiece with `##`)")));
    }
    let norm = tj.get("normalizer").unwrap_or(&Json::Null);
    let nflag = |k: &str| norm.get(k).and_then(Json::as_bool);
    if norm.get("type").and_then(Json::as_str) != Some("BertNormalizer") || nflag("clean_text") == Some(false) || nflag("handle_chinese_chars") == Some(false) {
        return Err(HfError::Unsupported("tokenizer.json: WordPiece without BERT's normaliser (clean_text, handle_chinese_chars)".into()));
    }
    if tj.pointer("/pre_tokenizer/type").and_then(Json::as_str) != Some("BertPreTokenizer") {
        return Err(HfError::Unsupported("tokenizer.json: WordPiece without BERT's pre-tokenizer".into()));
    }
    let lowercase = nflag("lowercase").unwrap_or(true);
    let strip_accents = nflag("strip_accents").unwrap_or(lowercase);
    let (texts, added) = id_table(&tj, n_rows)?;
    let mut tokens = Vec::with_capacity(n_rows);
    let mut types = Vec::with_capacity(n_rows);
    for (i, t) in texts.iter().enumerate() {
        let (text, ty) = match t {
            None => (format!("[PAD{i}]"), TT_UNUSED),
            Some(t) if added.get(&i) == Some(&true) => (t.clone(), TT_CONTROL),
            Some(t) if t.starts_with('[') && t.ends_with(']') => (t.clone(), TT_NORMAL),
            Some(t) => match t.strip_prefix("##") {
                Some(rest) if !rest.is_empty() => (rest.to_string(), TT_NORMAL),
                _ => (format!("\u{2581}{t}"), TT_NORMAL),
            },
        };
        tokens.push(Value::String(text));
        types.push(Value::I32(ty));
    }
    let named = |key: &str, default: &str| {
        let t = token_text(tc.get(key)).unwrap_or(default).to_string();
        id_of(&texts, &t).ok_or_else(|| tok_err(format!("tokenizer: {key} `{t}` is not in the vocabulary")))
    };
    let unk_text = model.get("unk_token").and_then(Json::as_str).unwrap_or("[UNK]");
    let unk = id_of(&texts, unk_text).ok_or_else(|| tok_err(format!("tokenizer.json: unk_token `{unk_text}` is not in the vocabulary")))?;
    w.add_kv("tokenizer.ggml.model", "bert");
    w.add_kv("tokenizer.ggml.tokens", Value::Array(tokens));
    w.add_kv("tokenizer.ggml.token_type", Value::Array(types));
    w.add_kv("tokenizer.ggml.bos_token_id", Value::U32(named("cls_token", "[CLS]")?));
    w.add_kv("tokenizer.ggml.seperator_token_id", Value::U32(named("sep_token", "[SEP]")?));
    w.add_kv("tokenizer.ggml.unknown_token_id", Value::U32(unk));
    if let Ok(pad) = named("pad_token", "[PAD]") {
        w.add_kv("tokenizer.ggml.padding_token_id", Value::U32(pad));
    }
    w.add_kv("tokenizer.ggml.normalizer.lowercase", lowercase);
    w.add_kv("tokenizer.ggml.normalizer.strip_accents", strip_accents);
    w.add_kv("jikji.wordpiece.normalizer", "huggingface");
    let max_chars = model.get("max_input_chars_per_word").and_then(Json::as_u64).unwrap_or(100);
    w.add_kv("jikji.wordpiece.max_input_chars_per_word", Value::U32(max_chars.min(u32::MAX as u64) as u32));
    Ok(())
}
