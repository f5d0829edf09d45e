//! Constrained decoding: JSON Schema, regular expressions, Lark grammars and fixed choices,
//! enforced token by token with llguidance.
//!
//! Design choices:
//! - **One compiler per model.** [`GrammarCompiler::new`] hands the model's vocabulary to
//!   llguidance once (a token trie, `vocab.rs`); every request compiles its grammar
//!   against that shared trie. A compiled [`Constraint`] is cheap to clone, so the `n`
//!   choices of one request compile once and each choice walks its own copy.
//! - **Bounded compile work.** Before llguidance sees anything, [`GrammarLimits`] caps the
//!   spec's size and a JSON schema's nesting depth (a 20,000-level schema is refused by a
//!   walk, never by a stack overflow); llguidance's own fuel limits (lexer fuel, grammar
//!   size, Earley items per mask) bound the compile and every mask. Callers that must stay
//!   responsive run [`GrammarCompiler::compile`] off their async threads.
//! - **Unsupported features are errors.** JSON schemas compile non-leniently, so a keyword
//!   llguidance cannot enforce is named in the error instead of silently ignored.
//! - **Compact JSON.** Schemas compile with fixed separators (`", "`, `": "`) and no free
//!   whitespace between tokens: a small model cannot wander into endless blank lines, and
//!   every output is plain `json.loads` material.
//! - **Masks beside the forward pass.** The serving loop computes each constrained
//!   sequence's mask on a helper thread while the batch's forward pass runs (the mask
//!   depends only on the tokens so far), and applies it to the logits before sampling
//!   (`-inf` for disallowed ids), so seeded sampling stays seeded and greedy stays greedy.

mod vocab;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jikji_tokenizer::Tokenizer;
use llguidance::api::{ParserLimits, TopLevelGrammar};
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;
use toktrie::{SimpleVob, TokEnv};

/// What a generation must match.
#[derive(Clone, Debug, PartialEq)]
pub enum GrammarSpec {
    /// Any JSON object (`response_format: json_object`).
    JsonObject,
    /// A JSON Schema (draft 2020-12 keywords; `$ref` to `#/...`).
    JsonSchema(Value),
    /// A regular expression (Rust `regex` syntax) the whole output matches.
    Regex(String),
    /// A grammar in llguidance's Lark dialect.
    Lark(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
}

impl GrammarSpec {
    /// A short name for messages and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            GrammarSpec::JsonObject => "json_object",
            GrammarSpec::JsonSchema(_) => "json_schema",
            GrammarSpec::Regex(_) => "regex",
            GrammarSpec::Lark(_) => "grammar",
            GrammarSpec::Choice(_) => "choice",
        }
    }
}

/// Caps on what one grammar may ask of the compiler (documented in the server's README).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrammarLimits {
    /// Largest JSON schema, serialized, in bytes.
    pub max_schema_bytes: usize,
    /// Deepest nesting of arrays/objects inside a JSON schema document.
    pub max_schema_depth: usize,
    /// Longest regex or Lark grammar in bytes.
    pub max_grammar_bytes: usize,
    /// Most choices, and the longest choice in bytes.
    pub max_choices: usize,
    pub max_choice_bytes: usize,
    /// llguidance's fuel for building the lexer (≈ 50 units per µs).
    pub lexer_fuel: u64,
    /// llguidance's cap on grammar symbols.
    pub max_grammar_size: usize,
}

impl Default for GrammarLimits {
    fn default() -> Self {
        Self {
            max_schema_bytes: 256 * 1024,
            max_schema_depth: 64,
            max_grammar_bytes: 64 * 1024,
            max_choices: 256,
            max_choice_bytes: 1024,
            lexer_fuel: 1_000_000,
            max_grammar_size: 200_000,
        }
    }
}

/// Why a grammar was refused or a constrained step failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error("the {kind} is {bytes} bytes; at most {limit} are allowed")]
    TooLarge { kind: &'static str, bytes: usize, limit: usize },
    #[error("the JSON schema nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("{0}")]
    Invalid(String),
    #[error("cannot compile the {kind}: {message}")]
    Compile { kind: &'static str, message: String },
    #[error("constrained decoding is unavailable for this model: {0}")]
    Unavailable(String),
    #[error("grammar: {0}")] // STEP_PREFIX
    Step(String),
}

/// Compiles grammars against one model's vocabulary.
pub struct GrammarCompiler {
    factory: ParserFactory,
    limits: GrammarLimits,
    tok_env: TokEnv,
}

impl std::fmt::Debug for GrammarCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarCompiler").field("limits", &self.limits).finish()
    }
}

impl GrammarCompiler {
    /// Builds the token trie for a model with `n_rows` logits per row.
    pub fn new(tokenizer: Arc<Tokenizer>, n_rows: usize, limits: GrammarLimits) -> Result<Self, GrammarError> {
        let tok_env = vocab::tok_env(tokenizer, n_rows).map_err(GrammarError::Unavailable)?;
        let mut factory = ParserFactory::new_simple(&tok_env).map_err(|e| GrammarError::Unavailable(e.to_string()))?;
        factory.quiet();
        *factory.limits_mut() = ParserLimits {
            initial_lexer_fuel: limits.lexer_fuel,
            max_grammar_size: limits.max_grammar_size,
            verbose_errors: false,
            ..ParserLimits::default()
        };
        Ok(Self { factory, limits, tok_env })
    }

    pub fn limits(&self) -> &GrammarLimits {
        &self.limits
    }

    /// Logits rows the masks cover.
    pub fn n_rows(&self) -> usize {
        self.tok_env.tok_trie().vocab_size()
    }

    /// Checks the spec against the limits and compiles it.
    pub fn compile(&self, spec: &GrammarSpec) -> Result<Constraint, GrammarError> {
        let t0 = Instant::now();
        let grammar = self.top_level(spec)?;
        let parser = llguidance::panic_utils::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.factory.create_parser(grammar)
        }))
        .map_err(|e| GrammarError::Compile { kind: spec.kind(), message: e.to_string() })?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(GrammarError::Compile { kind: spec.kind(), message: e });
        }
        let mut c = Constraint { matcher, mask: None, compile_time: Duration::ZERO, n_rows: self.n_rows() };
        // The first mask is part of the compile: a grammar whose lexer blows its fuel on
        // first use, or whose language is empty (`a: a "x"`), is refused here, before it
        // enters a batch, instead of failing its first step.
        c.prepare().map_err(|e| GrammarError::Compile { kind: spec.kind(), message: step_message(&e) })?;
        if !c.mask.as_ref().is_some_and(|m| m.num_set() > 0) {
            return Err(GrammarError::Compile { kind: spec.kind(), message: "the grammar matches no output".into() });
        }
        c.compile_time = t0.elapsed();
        Ok(c)
    }

    fn top_level(&self, spec: &GrammarSpec) -> Result<TopLevelGrammar, GrammarError> {
        let l = &self.limits;
        let text_limit = |kind: &'static str, s: &str| {
            if s.len() > l.max_grammar_bytes {
                return Err(GrammarError::TooLarge { kind, bytes: s.len(), limit: l.max_grammar_bytes });
            }
            if s.trim().is_empty() {
                return Err(GrammarError::Invalid(format!("the {kind} is empty")));
            }
            Ok(())
        };
        Ok(match spec {
            GrammarSpec::JsonObject => json_schema(serde_json::json!({"type": "object"})),
            GrammarSpec::JsonSchema(schema) => {
                check_depth(schema, l.max_schema_depth)?;
                let bytes = serde_json::to_vec(schema).map(|v| v.len()).unwrap_or(usize::MAX);
                if bytes > l.max_schema_bytes {
                    return Err(GrammarError::TooLarge { kind: "JSON schema", bytes, limit: l.max_schema_bytes });
                }
                if !(schema.is_object() || schema.is_boolean()) {
                    return Err(GrammarError::Invalid("a JSON schema must be an object or a boolean".into()));
                }
                json_schema(schema.clone())
            }
            GrammarSpec::Regex(rx) => {
                text_limit("regex", rx)?;
                // Reject what the regex syntax refuses before llguidance rewrites it.
                regex_syntax_check(rx)?;
                TopLevelGrammar::from_regex(rx)
            }
            GrammarSpec::Lark(g) => {
                text_limit("grammar", g)?;
                TopLevelGrammar::from_lark(g.clone())
            }
            GrammarSpec::Choice(list) => {
                if list.is_empty() {
                    return Err(GrammarError::Invalid("`choice` must hold at least one string".into()));
                }
                if list.len() > l.max_choices {
                    return Err(GrammarError::Invalid(format!("`choice` may hold at most {} strings", l.max_choices)));
                }
                if let Some(c) = list.iter().find(|c| c.len() > l.max_choice_bytes || c.is_empty()) {
                    return Err(GrammarError::Invalid(format!(
                        "each choice must be 1 to {} bytes long (got {})",
                        l.max_choice_bytes,
                        c.len()
                    )));
                }
                let alts: Vec<String> = list.iter().map(|c| regex::escape(c)).collect();
                TopLevelGrammar::from_regex(&format!("({})", alts.join("|")))
            }
        })
    }
}

/// A step error, without llguidance's `<non-verbose/>` trailer.
fn step_error(e: impl std::fmt::Display) -> GrammarError {
    let m = e.to_string();
    GrammarError::Step(m.trim_end().trim_end_matches("<non-verbose/>").trim_end().to_string())
}

/// Whether a generation's error message (`GenEvent::Error`) came from its grammar (it ran
/// past its per-step limits, or allowed nothing the model can produce): the request's
/// grammar is at fault, so servers answer it as a client error rather than their own.
pub fn is_step_error(message: &str) -> bool {
    message.starts_with(STEP_PREFIX)
}

const STEP_PREFIX: &str = "grammar: ";

/// The text of a step error without llguidance's `<non-verbose/>` trailer.
fn step_message(e: &GrammarError) -> String {
    let msg = match e {
        GrammarError::Step(m) => m.as_str(),
        _ => return e.to_string(),
    };
    let msg = msg.trim_end().trim_end_matches("<non-verbose/>").trim_end();
    match msg {
        "NoExtensionBias" | "NoExtension" => "the grammar matches no output (is every rule reachable from a base case?)".into(),
        m => m.to_string(),
    }
}

/// A JSON schema grammar with jikji's output layout (see the module docs).
fn json_schema(mut schema: Value) -> TopLevelGrammar {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "x-guidance".into(),
            serde_json::json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    TopLevelGrammar::from_json_schema(schema)
}

/// Refuses documents nested deeper than `limit` (iteratively: no recursion on user data).
fn check_depth(v: &Value, limit: usize) -> Result<(), GrammarError> {
    let mut stack: Vec<(&Value, usize)> = vec![(v, 1)];
    while let Some((v, d)) = stack.pop() {
        if d > limit {
            return Err(GrammarError::TooDeep { limit });
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    Ok(())
}

fn regex_syntax_check(rx: &str) -> Result<(), GrammarError> {
    regex::RegexBuilder::new(rx)
        .size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map(|_| ())
        .map_err(|e| GrammarError::Compile { kind: "regex", message: e.to_string() })
}

/// One sequence's grammar state.
pub struct Constraint {
    matcher: Matcher,
    /// The allowed ids for the next token, when already computed.
    mask: Option<SimpleVob>,
    compile_time: Duration,
    n_rows: usize,
}

impl Clone for Constraint {
    fn clone(&self) -> Self {
        Self { matcher: self.matcher.clone(), mask: self.mask.clone(), compile_time: self.compile_time, n_rows: self.n_rows }
    }
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("compile_time", &self.compile_time).finish()
    }
}

impl Constraint {
    /// Logits rows the masks cover (the model's vocabulary).
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// How long [`GrammarCompiler::compile`] took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Computes the next token's mask now unless it is already known (the serving loop
    /// calls this on a helper thread during the forward pass).
    pub fn prepare(&mut self) -> Result<(), GrammarError> {
        if self.mask.is_none() {
            let m = self.matcher.compute_mask_or_eos().map_err(step_error)?;
            self.mask = Some(m);
        }
        Ok(())
    }

    /// Sets every disallowed id of `logits` to `-inf`. Errors when the grammar allows no
    /// token at all.
    pub fn apply(&mut self, logits: &mut [f32]) -> Result<(), GrammarError> {
        self.prepare()?;
        let Some(mask) = &self.mask else { return Err(GrammarError::Step("no mask".into())) };
        let mut any = false;
        for (id, v) in logits.iter_mut().enumerate() {
            if mask.is_allowed(id as u32) {
                any |= *v > f32::NEG_INFINITY;
            } else {
                *v = f32::NEG_INFINITY;
            }
        }
        if !any {
            return Err(GrammarError::Step("the grammar allows no token the model can produce here".into()));
        }
        Ok(())
    }

    /// Whether `id` is allowed next (computing the mask if needed).
    pub fn allows(&mut self, id: u32) -> Result<bool, GrammarError> {
        self.prepare()?;
        Ok(self.mask.as_ref().is_some_and(|m| m.is_allowed(id)))
    }

    /// Advances past a sampled token.
    pub fn commit(&mut self, id: u32) -> Result<(), GrammarError> {
        self.mask = None;
        self.matcher.consume_token(id).map_err(step_error)
    }

    /// The grammar is complete and allows nothing more but end of generation.
    pub fn is_finished(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The grammar may end here (end of generation is allowed).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }

    /// Tokens the grammar forces next (empty when more than one continuation is possible).
    pub fn forced_tokens(&mut self) -> Vec<u32> {
        self.matcher.compute_ff_tokens()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_check_refuses_deep_documents_without_recursion() {
        let mut v = serde_json::json!({"type": "string"});
        for _ in 0..20_000 {
            let mut o = serde_json::Map::new();
            o.insert("type".into(), Value::from("array"));
            o.insert("items".into(), v);
            v = Value::Object(o);
        }
        assert_eq!(check_depth(&v, 64), Err(GrammarError::TooDeep { limit: 64 }));
        assert_eq!(check_depth(&serde_json::json!({"a": [1, {"b": 2}]}), 4), Ok(()));
        // Dropping a 20,000-level Value recurses in serde_json; keep it out of this thread.
        std::mem::forget(v);
    }

    #[test]
    fn bad_regex_syntax_is_a_compile_error_naming_the_regex() {
        let e = regex_syntax_check("(ab").expect_err("unclosed group");
        assert!(matches!(e, GrammarError::Compile { kind: "regex", .. }), "{e:?}");
        assert!(regex_syntax_check("[0-9]{3}-[a-z]+").is_ok());
    }
}
