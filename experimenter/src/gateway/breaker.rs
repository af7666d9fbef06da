//! A per-backend circuit breaker: after `failures` consecutive failures the circuit opens and
//! requests skip that backend (going straight to the fallback) instead of waiting for its
//! timeout; after `cooldown` one probe request is let through (half-open); its success closes
//! the circuit, its failure opens it again for another cool-down.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::BreakerConfig;

#[derive(Debug, Default)]
struct State {
    consecutive: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// One backend's breaker. Cheap: one uncontended mutex per request.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            threshold: config.failures.max(1),
            cooldown: Duration::from_millis(config.cooldown_ms),
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a request may go to this backend now. In the half-open state only one probe is
    /// allowed until it reports back.
    pub fn allow(&self, now: Instant) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return true;
        };
        match s.open_until {
            None => true,
            Some(t) if now < t => false,
            Some(_) if s.probing => false,
            Some(_) => {
                s.probing = true;
                true
            }
        }
    }

    pub fn success(&self) {
        if let Ok(mut s) = self.state.lock() {
            *s = State::default();
        }
    }

    pub fn failure(&self, now: Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.consecutive = s.consecutive.saturating_add(1);
            if s.probing || s.consecutive >= self.threshold {
                s.open_until = Some(now + self.cooldown);
                s.probing = false;
            }
        }
    }

    /// Whether the circuit is open or half-open (for the metrics gauge).
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.open_until.is_some())
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_after_cooldown() {
        let b = Breaker::new(BreakerConfig {
            failures: 3,
            cooldown_ms: 1000,
        });
        let t0 = Instant::now();
        for _ in 0..2 {
            assert!(b.allow(t0));
            b.failure(t0);
        }
        assert!(b.allow(t0), "still closed after 2 of 3 failures");
        b.failure(t0);
        assert!(!b.allow(t0 + Duration::from_millis(999)), "open");
        let t1 = t0 + Duration::from_millis(1001);
        assert!(b.allow(t1), "half-open: one probe");
        assert!(!b.allow(t1), "only one probe at a time");
        b.failure(t1);
        assert!(
            !b.allow(t1 + Duration::from_millis(500)),
            "probe failed: open again"
        );
        let t2 = t1 + Duration::from_millis(1001);
        assert!(b.allow(t2));
        b.success();
        assert!(
            b.allow(t2) && b.allow(t2) && !b.is_open(),
            "closed after a good probe"
        );
    }
}
