//! Model families: what a model folder is and how it runs.
//!
//! A [`Family`] says which nodes make its graph ([`Family::graph`]), its ports
//! (what goes in and comes out), its [`Pacing`], its knobs, how its files are
//! loaded, and how its tiny random-weight stand-in is written in the real
//! layout. A folder declares its family in `antiphon.json` (`"family"`), or is
//! recognised from its files ([`Family::recognises`]).
//!
//! Front ends (plugin, host) never name a family: they load a folder, ask the
//! loaded [`ModelBundle`] for its graph, pacing and fixed delay, and list
//! [`all`] families for `model init --family`.
//!
//! Adding a family: a module implementing [`Family`] and one entry in [`all`].

pub mod codec;
pub mod csm;
pub mod lm;

use std::path::Path;

use antiphon_framework::engine::{EngineConfig, Pacing as EnginePacing};
use antiphon_framework::graph::{Graph, GraphBuilder};
use antiphon_framework::knobs::KnobSpec;
use antiphon_framework::node::Node;

use crate::bundle::{LoadOptions, ModelBundle};
use crate::errors::ModelError;
use crate::spec::Manifest;

pub use codec::CODEC;
pub use csm::CSM;
pub use lm::{HIBIKI, MOSHI};

/// How a family's generation is paced against the audio clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// Speech-to-speech: frame t of the reply needs frame t of the input; the
    /// delay adapts (the lead controller).
    InputPaced,
    /// Text-to-speech: generation runs ahead of the playhead, up to the lead.
    FreeRunning,
    /// An audio effect: input-paced with a fixed, exactly known delay that is
    /// reported to the host ([`ModelBundle::fixed_delay_samples`]).
    FixedDelay,
}

impl Pacing {
    /// The engine's pacing for this family.
    pub fn engine(self) -> EnginePacing {
        match self {
            Pacing::InputPaced | Pacing::FixedDelay => EnginePacing::InputPaced,
            Pacing::FreeRunning => EnginePacing::FreeRunning,
        }
    }
}

/// What a family is for: front ends check it before running a model for a
/// purpose (`antiphon live` holds a conversation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Talk with the model: the user's voice in, a spoken reply out.
    Conversation,
    /// Speech in one language in, the same speech in another out.
    Translation,
    /// An audio effect: the input, transformed, out.
    Effect,
    /// Text in, speech out.
    TextToSpeech,
}

impl Task {
    /// In words, for messages ("… is a speech translation model").
    pub fn describe(self) -> &'static str {
        match self {
            Task::Conversation => "a spoken conversation model",
            Task::Translation => "a speech translation model",
            Task::Effect => "an audio effect",
            Task::TextToSpeech => "a text-to-speech model",
        }
    }
}

/// What a family's graph takes in and gives out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Audio from the device or host (the user's voice, a track).
    AudioIn,
    /// Text to speak (prompts, scripts).
    TextIn,
    /// Audio to the device or host.
    AudioOut,
    /// Text the model produces (Moshi's inner monologue, Hibiki's translation).
    TextOut,
}

/// The stages of a family's graph, in order, and its feedback edges.
pub struct Stages {
    /// `(stage name, node)`, connected in this order.
    pub chain: Vec<(&'static str, Box<dyn Node>)>,
    /// `(from, to)`: stage `to` may start frame t+1 only after `from` finished
    /// frame t (an autoregressive step).
    pub feedback: Vec<(&'static str, &'static str)>,
}

/// A model family (see the module docs).
pub trait Family: Send + Sync + 'static {
    /// The name users type (`antiphon model init --family NAME`) and
    /// `antiphon.json` holds.
    fn name(&self) -> &'static str;
    /// One line for `model inspect` and `--help`.
    fn summary(&self) -> &'static str;
    fn task(&self) -> Task;
    fn pacing(&self) -> Pacing;
    /// Inputs and outputs of the family's graph.
    fn ports(&self) -> &'static [Port];
    /// The knobs the family's nodes read (the session's bus carries more).
    fn knobs(&self, bundle: &ModelBundle) -> Vec<KnobSpec>;
    /// Whether a folder without `antiphon.json` holds this family, judged
    /// from its file names and kyutai's `config.json` (if any).
    fn recognises(&self, files: &[String], config: Option<&serde_json::Value>) -> bool;
    /// Loads the folder; `manifest` is `antiphon.json` when the folder has one.
    fn load(
        &'static self,
        dir: &Path,
        manifest: Option<Manifest>,
        opts: LoadOptions,
    ) -> Result<ModelBundle, ModelError>;
    /// The graph's stages for `bundle` at the device's `rate`.
    fn graph(&self, bundle: &ModelBundle, rate: f64, seed: u64) -> Result<Stages, String>;
    /// The delay the family's output has against its input, in samples at
    /// `rate`, when it is fixed (an effect); `None` when it adapts.
    fn fixed_delay_samples(
        &self,
        _bundle: &ModelBundle,
        _rate: f64,
        _engine: &EngineConfig,
    ) -> Option<usize> {
        None
    }
    /// Writes the family's tiny random-weight stand-in (real architecture,
    /// real tensor names and layout) into `dir`, made from `seed`.
    fn write_stand_in(&self, dir: &Path, seed: u64) -> Result<(), ModelError>;
}

/// Every family, in the order folders are recognised (most specific first).
pub fn all() -> &'static [&'static dyn Family] {
    static ALL: [&dyn Family; 4] = [&csm::CSM, &lm::HIBIKI, &lm::MOSHI, &codec::CODEC];
    &ALL
}

/// The family called `name`, or an error listing the known ones.
pub fn by_name(name: &str) -> Result<&'static dyn Family, String> {
    all()
        .iter()
        .copied()
        .find(|f| f.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown model family `{name}` (known: {})",
                names().join(", ")
            )
        })
}

/// The names of every family.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|f| f.name()).collect()
}

/// The model type kyutai's `config.json` declares (`"model_type"`), if any.
pub(crate) fn declared_type(config: Option<&serde_json::Value>) -> Option<&str> {
    config?.get("model_type")?.as_str()
}

/// Builds and validates a family graph for a device at `rate`, each node
/// passed through `wrap(stage name, node)` first.
pub fn build(
    bundle: &ModelBundle,
    rate: f64,
    seed: u64,
    wrap: impl FnMut(&str, Box<dyn Node>) -> Box<dyn Node>,
) -> Result<Graph, String> {
    bundle.family.graph(bundle, rate, seed)?.build(rate, wrap)
}

impl Stages {
    /// The validated graph for a device at `rate`, each node passed through
    /// `wrap(stage name, node)` first.
    pub fn build(
        self,
        rate: f64,
        mut wrap: impl FnMut(&str, Box<dyn Node>) -> Box<dyn Node>,
    ) -> Result<Graph, String> {
        let chain: Vec<(&str, Box<dyn Node>)> = self
            .chain
            .into_iter()
            .map(|(name, node)| (name, wrap(name, node)))
            .collect();
        let mut b = GraphBuilder::new().chain(chain);
        for (from, to) in self.feedback {
            b = b.feedback(from, to);
        }
        b.build(rate).map_err(|e| e.to_string())
    }
}
