//! Which model to run, how it is loaded, and the process-wide cache of loaded
//! models.
//!
//! The cache never holds its lock while a model loads: a lookup takes the lock
//! for a moment, the load runs unlocked on its own thread, and the result is
//! inserted afterwards. Two sessions asking for the same model share one copy
//! while both use it; the most recently loaded model stays cached after its
//! last user is gone, so a re-activation (new sample rate, new block size) does
//! not read the weights again.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::builtin::{builtin_dir, BUILTIN_SEED};
use crate::bundle::{LoadOptions, ModelBundle};
use crate::errors::ModelError;

/// The model a session runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum ModelChoice {
    /// The built-in tiny model (real architecture, random weights).
    #[default]
    Builtin,
    /// A model directory (`antiphon.json` or kyutai's published layout).
    Dir(PathBuf),
}

impl ModelChoice {
    /// Parses what users type and what state/presets store: `""` or `"builtin"`
    /// is the built-in model, anything else a directory.
    pub fn parse(s: &str) -> Self {
        match s.trim() {
            "" | "builtin" => Self::Builtin,
            dir => Self::Dir(PathBuf::from(dir)),
        }
    }
}

impl fmt::Display for ModelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin => f.write_str("builtin"),
            Self::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// Set when the session no longer wants a load's result. Loaders that can stop
/// early (tests, future chunked loaders) check it; the others finish in the
/// background and their result is dropped.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Loads a model; returns the reason in words a user can act on on failure.
pub type LoadFn = Arc<dyn Fn(&ModelChoice, &Cancel) -> Result<ModelBundle, String> + Send + Sync>;

/// The real loader: the built-in model or a directory through [`ModelBundle`].
pub fn load_model(choice: &ModelChoice) -> Result<ModelBundle, String> {
    load_model_with(choice, LoadOptions::default())
}

/// [`load_model`] with explicit precision/device options (`--dtype`, `--device`).
pub fn load_model_with(choice: &ModelChoice, opts: LoadOptions) -> Result<ModelBundle, String> {
    match choice {
        ModelChoice::Builtin => builtin_dir(BUILTIN_SEED)
            .and_then(|d| ModelBundle::load_with(d, opts))
            .map_err(|e| format!("cannot prepare the built-in model: {e}")),
        ModelChoice::Dir(d) => ModelBundle::load_with(d, opts).map_err(|e| match e {
            ModelError::MissingDir(_) | ModelError::NotADir(_) => format!(
                "cannot load the model: {e}; choose an existing model folder (or the built-in model)"
            ),
            other => format!("cannot load the model: {other}"),
        }),
    }
}

/// The default [`LoadFn`]: [`load_model`].
pub fn default_loader() -> LoadFn {
    Arc::new(|c, _| load_model(c))
}

/// Process-wide model cache (see the module docs). Bounded: one strong entry
/// plus weak entries for models other sessions still hold.
#[derive(Default)]
pub struct ModelCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    recent: Option<(ModelChoice, Arc<ModelBundle>)>,
    shared: Vec<(ModelChoice, Weak<ModelBundle>)>,
}

impl ModelCache {
    /// The cache every session of this process uses.
    pub fn global() -> &'static ModelCache {
        static CACHE: std::sync::OnceLock<ModelCache> = std::sync::OnceLock::new();
        CACHE.get_or_init(ModelCache::default)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A loaded copy of `choice`, if one is cached. A cached directory that no
    /// longer exists is evicted (the user removed or moved it), so choosing it
    /// again reports that instead of silently running weights from nowhere.
    pub fn get(&self, choice: &ModelChoice) -> Option<Arc<ModelBundle>> {
        if let ModelChoice::Dir(d) = choice {
            if !d.is_dir() {
                self.evict(choice);
                return None;
            }
        }
        let mut c = self.lock();
        c.shared.retain(|(_, w)| w.strong_count() > 0);
        if let Some((k, b)) = &c.recent {
            if k == choice {
                return Some(b.clone());
            }
        }
        c.shared
            .iter()
            .find(|(k, _)| k == choice)
            .and_then(|(_, w)| w.upgrade())
    }

    /// Remembers a freshly loaded model (the most recent one stays alive).
    pub fn insert(&self, choice: &ModelChoice, bundle: &Arc<ModelBundle>) {
        let mut c = self.lock();
        if let Some((k, b)) = c.recent.take() {
            if &k != choice {
                c.shared.push((k, Arc::downgrade(&b)));
            }
        }
        c.shared
            .retain(|(k, w)| k != choice && w.strong_count() > 0);
        c.recent = Some((choice.clone(), bundle.clone()));
    }

    /// Forgets `choice`.
    pub fn evict(&self, choice: &ModelChoice) {
        let mut c = self.lock();
        if c.recent.as_ref().is_some_and(|(k, _)| k == choice) {
            c.recent = None;
        }
        c.shared.retain(|(k, _)| k != choice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        assert_eq!(ModelChoice::parse(""), ModelChoice::Builtin);
        assert_eq!(ModelChoice::parse(" builtin "), ModelChoice::Builtin);
        let d = ModelChoice::parse("/m/moshi");
        assert_eq!(d, ModelChoice::Dir("/m/moshi".into()));
        assert_eq!(d.to_string(), "/m/moshi");
    }

    #[test]
    fn a_missing_folder_names_itself_and_says_what_to_do() {
        let Err(e) = load_model(&ModelChoice::parse("/no/such/model")) else {
            panic!("a missing folder loaded")
        };
        assert!(e.contains("/no/such/model") && e.contains("choose"), "{e}");
    }
}
