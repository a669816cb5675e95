//! Refresh tokens this process saw rotated or refused.

/// Refresh tokens this process saw rotated or refused (keyed hashes of the
/// last few): never sent again, whatever a store says.
pub(crate) struct SpentTokens {
    hasher: std::hash::RandomState,
    recent: std::sync::Mutex<std::collections::VecDeque<u64>>,
}

impl SpentTokens {
    const KEPT: usize = 16;

    pub(crate) fn new() -> Self {
        SpentTokens {
            hasher: std::hash::RandomState::new(),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn hash(&self, token: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, token)
    }

    pub(crate) fn insert(&self, token: &str) {
        let hash = self.hash(token);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == Self::KEPT {
            recent.pop_front();
        }
        recent.push_back(hash);
    }

    pub(crate) fn contains(&self, token: &str) -> bool {
        let hash = self.hash(token);
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.contains(&hash)
    }
}
