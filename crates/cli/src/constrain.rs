//! `--json-schema FILE`, `--regex RE`, `--grammar FILE` for `jikji run` and `jikji chat`:
//! the output is kept inside the grammar token by token (the engine's llguidance
//! constraint), for scripts that want JSON (or any fixed shape) out of a model without a
//! server.
//!
//! Design choices:
//! - **One flag at most.** The three options form one clap group; two of them are a usage
//!   error before the model is opened.
//! - **Refused before the model runs.** The file is read and parsed, and the grammar
//!   compiled with the same [`GrammarLimits`] as the server, before any token is
//!   generated; every failure is one line on stderr naming the flag and the file, and a
//!   non-zero exit (no model output on stdout).
//! - **Compile once.** `chat` compiles the grammar once and every reply walks a fresh
//!   copy of it, so each answer on its own matches the grammar.
//! - No compile timeout here: the limits (sizes, depth, llguidance's fuel) already bound
//!   the work, and the CLI has no other users to keep responsive.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use clap::Args;
use jikji_engine::grammar::{Constraint, GrammarCompiler, GrammarLimits, GrammarSpec};
use jikji_engine::Opened;

/// Structured output: at most one of these.
#[derive(Args, Debug, Clone, Default)]
#[group(id = "constraint", multiple = false)]
pub struct ConstrainArgs {
    /// Keep the output inside the JSON Schema in FILE (the output is compact JSON).
    #[arg(long = "json-schema", value_name = "FILE")]
    pub json_schema: Option<PathBuf>,
    /// Keep the whole output matching the regular expression RE (Rust `regex` syntax).
    #[arg(long = "regex", value_name = "RE")]
    pub regex: Option<String>,
    /// Keep the output inside the Lark grammar in FILE (llguidance's dialect; rule `start`).
    #[arg(long = "grammar", value_name = "FILE")]
    pub grammar: Option<PathBuf>,
}

impl ConstrainArgs {
    /// The flag in use, as written on the command line (for messages).
    fn flag(&self) -> String {
        match (&self.json_schema, &self.regex, &self.grammar) {
            (Some(p), _, _) => format!("--json-schema {}", p.display()),
            (_, Some(_), _) => "--regex".to_string(),
            (_, _, Some(p)) => format!("--grammar {}", p.display()),
            _ => String::new(),
        }
    }

    /// The requested grammar, read from its file; `None` without a flag.
    pub fn spec(&self) -> Result<Option<GrammarSpec>> {
        if let Some(path) = &self.json_schema {
            let text = read(path, "--json-schema")?;
            let schema: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| anyhow!("--json-schema {}: not valid JSON: {e}", path.display()))?;
            return Ok(Some(GrammarSpec::JsonSchema(schema)));
        }
        if let Some(rx) = &self.regex {
            return Ok(Some(GrammarSpec::Regex(rx.clone())));
        }
        if let Some(path) = &self.grammar {
            return Ok(Some(GrammarSpec::Lark(read(path, "--grammar")?)));
        }
        Ok(None)
    }

    /// Reads and compiles the requested grammar against the model's vocabulary.
    pub fn compile(&self, loaded: &Opened) -> Result<Option<Constraint>> {
        let Some(spec) = self.spec()? else { return Ok(None) };
        let n_rows = loaded.model.info().n_vocab;
        let compiler = GrammarCompiler::new(Arc::new(loaded.tokenizer.clone()), n_rows, GrammarLimits::default())
            .map_err(|e| anyhow!("{}: {}", self.flag(), one_line(&e.to_string())))?;
        let c = compiler.compile(&spec).map_err(|e| anyhow!("{}: {}", self.flag(), one_line(&e.to_string())))?;
        Ok(Some(c))
    }
}

fn read(path: &Path, flag: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {}", path.display()))
}

/// Compiler messages can span lines (llguidance quotes the grammar); the CLI prints one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("cannot compile:\n  rule x\n\tundefined "), "cannot compile: rule x undefined");
    }

    #[test]
    fn a_schema_file_that_is_not_json_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("jikji-constrain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.json");
        std::fs::write(&p, "{\"type\": ").unwrap();
        let args = ConstrainArgs { json_schema: Some(p.clone()), ..ConstrainArgs::default() };
        let e = args.spec().unwrap_err().to_string();
        assert!(e.contains("--json-schema") && e.contains("bad.json") && e.contains("not valid JSON"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_flag_asks_for_no_grammar() {
        assert_eq!(ConstrainArgs::default().spec().unwrap(), None);
    }
}
