//! Token verdicts of the last second, so that a flood of requests (valid or forged) costs one
//! token lookup per token per second rather than one per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use adbudget_db::repo::tokens::Live;

/// How long a verdict is believed: a revoked token is refused within this time.
pub const TTL: Duration = Duration::from_secs(1);
/// Verdicts kept at most; past it the expired ones go, and if none has, all of them.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct TokenCache {
    verdicts: Mutex<HashMap<String, (Option<Live>, Instant)>>,
}

impl TokenCache {
    /// The verdict on `token` if one younger than [`TTL`] is kept (`Some(None)`: not live).
    pub fn get(&self, token: &str) -> Option<Option<Live>> {
        let verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        verdicts
            .get(token)
            .filter(|(_, at)| at.elapsed() < TTL)
            .map(|(live, _)| live.clone())
    }

    pub fn put(&self, token: &str, live: Option<Live>) {
        let mut verdicts = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if verdicts.len() >= CAPACITY {
            verdicts.retain(|_, (_, at)| at.elapsed() < TTL);
            if verdicts.len() >= CAPACITY {
                verdicts.clear();
            }
        }
        verdicts.insert(token.to_owned(), (live, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_expire_and_memory_stays_bounded() {
        let cache = TokenCache::default();
        let ingest = Live {
            id: 1,
            name: "connector".into(),
            scope: adbudget_db::repo::tokens::Scope::Ingest,
            brands: Default::default(),
            use_unrecorded: false,
        };
        cache.put("a", Some(ingest.clone()));
        cache.put("b", None);
        assert_eq!(cache.get("a"), Some(Some(ingest)));
        assert_eq!(cache.get("b"), Some(None));
        assert_eq!(cache.get("c"), None);
        for i in 0..3 * CAPACITY {
            cache.put(&format!("forged-{i}"), None);
        }
        assert!(cache.verdicts.lock().unwrap().len() <= CAPACITY);
        std::thread::sleep(TTL);
        cache.put("d", None);
        assert_eq!(cache.get("d"), Some(None));
        assert_eq!(cache.get("forged-0"), None);
    }
}
