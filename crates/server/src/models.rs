//! The models one server serves, and how a request's `model` picks one.
//!
//! Design choices:
//! - Each served model owns its engine: its own batch, queue, KV pool and metrics, so a
//!   burst on one model never takes the other's slots or cache. Routing is a lookup by
//!   name: the model's id or one of its aliases, exactly (no case folding, so two models
//!   never collide by accident; [`Models::new`] refuses a name used twice).
//! - A model has a [`ModelKind`] — what requests it answers. Only generating models exist
//!   today ([`Served::Generate`]); an embedding model is one more variant of [`Served`],
//!   and a handler asks [`Models::route`] for the kind it needs, so a chat request that
//!   names an embedding model gets a 400 naming the model's kind, never a wrong answer.
//! - A request without `model` goes to the first model of the kind it needs (the order
//!   of `-m` on the command line), which is also the model of `/props` and the web page.
//! - An unknown name is a 404 `model_not_found` in OpenAI's shape, listing what is served.

use jikji_engine::serve::EngineHandle;

use crate::error::ApiError;

/// What requests a model answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Chat and text completions (a decoder with a generation engine).
    Generate,
    /// Embeddings (an encoder).
    Embed,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Generate => "generate",
            ModelKind::Embed => "embed",
        }
    }
}

/// The engine behind one served model.
#[derive(Clone, Debug)]
pub enum Served {
    Generate(EngineHandle),
}

impl Served {
    pub fn kind(&self) -> ModelKind {
        match self {
            Served::Generate(_) => ModelKind::Generate,
        }
    }
}

/// One served model: the id clients see, other accepted names, and its engine.
#[derive(Clone, Debug)]
pub struct ServedModel {
    pub id: String,
    pub aliases: Vec<String>,
    pub served: Served,
}

impl ServedModel {
    /// A generating model named by its engine's model id.
    pub fn generate(engine: EngineHandle, aliases: Vec<String>) -> Self {
        let id = engine.model_id().to_string();
        Self { id, aliases, served: Served::Generate(engine) }
    }

    pub fn kind(&self) -> ModelKind {
        self.served.kind()
    }

    /// True when `name` is this model's id or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.id == name || self.aliases.iter().any(|a| a == name)
    }

    /// The model's tokenizer (every kind has one: `/tokenize` works for all).
    pub fn tokenizer(&self) -> &jikji_tokenizer::Tokenizer {
        match &self.served {
            Served::Generate(e) => e.tokenizer(),
        }
    }

    /// The generation engine, for generating models.
    pub fn engine(&self) -> Option<&EngineHandle> {
        match &self.served {
            Served::Generate(e) => Some(e),
        }
    }
}

/// Why a set of models cannot be served together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelsError {
    #[error("no model to serve")]
    Empty,
    #[error("the name `{0}` is given to two models; give each model its own with --model-alias")]
    DuplicateName(String),
}

/// The served models, in command-line order.
#[derive(Clone, Debug)]
pub struct Models {
    list: Vec<ServedModel>,
}

impl Models {
    /// One model (which cannot collide with itself).
    pub fn one(mut m: ServedModel) -> Self {
        Self::tidy(&mut m);
        Self { list: vec![m] }
    }

    fn tidy(m: &mut ServedModel) {
        let id = m.id.clone();
        m.aliases.retain(|a| *a != id);
        let mut seen = std::collections::HashSet::new();
        m.aliases.retain(|a| seen.insert(a.clone()));
    }

    /// Checks that there is at least one model and that no id or alias names two models.
    /// An alias equal to its own model's id is dropped.
    pub fn new(mut list: Vec<ServedModel>) -> Result<Self, ModelsError> {
        if list.is_empty() {
            return Err(ModelsError::Empty);
        }
        list.iter_mut().for_each(Self::tidy);
        let mut names = std::collections::HashSet::new();
        for m in &list {
            for n in std::iter::once(&m.id).chain(&m.aliases) {
                if !names.insert(n.as_str()) {
                    return Err(ModelsError::DuplicateName(n.clone()));
                }
            }
        }
        Ok(Self { list })
    }

    pub fn iter(&self) -> impl Iterator<Item = &ServedModel> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The model named `name` (id or alias), whatever its kind.
    pub fn find(&self, name: &str) -> Option<&ServedModel> {
        self.list.iter().find(|m| m.answers_to(name))
    }

    /// The first model of `kind` (what a request without `model` gets).
    pub fn first_of(&self, kind: ModelKind) -> Option<&ServedModel> {
        self.list.iter().find(|m| m.kind() == kind)
    }

    /// The generation engines, in order (draining and metrics visit them all).
    pub fn engines(&self) -> impl Iterator<Item = &EngineHandle> {
        self.list.iter().filter_map(ServedModel::engine)
    }

    /// The ids served, comma-separated (for error messages).
    pub fn ids(&self) -> String {
        self.list.iter().map(|m| format!("`{}`", m.id)).collect::<Vec<_>>().join(", ")
    }

    /// The model a request for `requested` (absent = the default) needing `kind` goes to:
    /// 404 for an unknown name, 400 for a model of another kind or when none of `kind`
    /// is served.
    pub fn route(&self, requested: Option<&str>, kind: ModelKind) -> Result<&ServedModel, ApiError> {
        match requested {
            Some(name) => {
                let m = self.find(name).ok_or_else(|| ApiError::unknown_model(name, &self.ids()))?;
                if m.kind() != kind {
                    return Err(ApiError::wrong_model_kind(&m.id, m.kind().as_str(), kind.as_str()));
                }
                Ok(m)
            }
            None => self.first_of(kind).ok_or_else(|| ApiError::no_model_of_kind(kind.as_str(), &self.ids())),
        }
    }

    /// The model named `requested` whatever its kind, or the first one when absent
    /// (`/tokenize`, `/detokenize`).
    pub fn pick(&self, requested: Option<&str>) -> Result<&ServedModel, ApiError> {
        match requested {
            Some(name) => self.find(name).ok_or_else(|| ApiError::unknown_model(name, &self.ids())),
            None => self.list.first().ok_or_else(|| ApiError::internal("no model is served")),
        }
    }

    /// The generation engine for `requested` (see [`Models::route`]).
    pub fn generator(&self, requested: Option<&str>) -> Result<&EngineHandle, ApiError> {
        let m = self.route(requested, ModelKind::Generate)?;
        m.engine().ok_or_else(|| ApiError::internal("a generating model without an engine"))
    }
}
