//! The provider types a running SoCMate knows, by their `provider_type`.

use std::sync::Arc;

use super::ProviderKind;

#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<Arc<dyn ProviderKind>>,
}

impl Registry {
    /// Adds a provider type; a type registered twice keeps the later registration.
    pub fn register(&mut self, kind: Arc<dyn ProviderKind>) {
        self.kinds
            .retain(|k| k.provider_type() != kind.provider_type());
        self.kinds.push(kind);
    }

    pub fn with(mut self, kind: Arc<dyn ProviderKind>) -> Self {
        self.register(kind);
        self
    }

    pub fn get(&self, provider_type: &str) -> Option<&Arc<dyn ProviderKind>> {
        self.kinds
            .iter()
            .find(|k| k.provider_type() == provider_type)
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn ProviderKind>> {
        self.kinds.iter()
    }

    /// `"a"` or `"a", "b"`: the accepted `provider_type` values, for messages.
    pub fn names(&self) -> String {
        self.kinds
            .iter()
            .map(|k| format!("\"{}\"", k.provider_type()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.kinds.iter().map(|k| k.provider_type()))
            .finish()
    }
}
