//! A circuit breaker per provider: after `threshold` consecutive failures it opens and callers
//! fail fast instead of waiting out timeouts; after `cooldown` one probe call is let through
//! (half-open), whose outcome closes or reopens it.
//!
//! Pure and clock-free: every method takes `now`, so the state machine is unit-tested without
//! sleeping, and returns the [`Transition`] it made, so the caller exports it as a metric.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down ended: one probe call is in flight, the others fail fast.
    HalfOpen,
}

impl State {
    /// A stable label (`closed`, `open`, `half_open`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The gauge value exported for this state: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

/// A change of state, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
}

/// A call the breaker refused, and when one may be let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// Until the breaker will consider a probe.
    pub retry_after: Duration,
}

/// Permission to make one call; hand it back through [`CircuitBreaker::on_success`] or
/// [`CircuitBreaker::on_failure`].
#[derive(Debug)]
#[must_use = "report the call's outcome to the breaker"]
pub struct Permit {
    probe: bool,
}

#[derive(Debug)]
struct Inner {
    state: State,
    failures: u32,
    /// While open: when a probe may go through.
    probe_at: Option<Instant>,
}

/// The breaker. Shared by every request to one provider (`Arc` it).
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

impl CircuitBreaker {
    /// A closed breaker that opens after `threshold` consecutive failures (at least 1) and
    /// half-opens `cooldown` later.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: 0,
                probe_at: None,
            }),
        }
    }

    /// The current state (an open breaker whose cool-down ended still reads `Open` until a call
    /// asks for a permit).
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Asks to make a call at `now`.
    ///
    /// # Errors
    /// [`Rejected`] while open (or half-open with the probe in flight), with the time left.
    pub fn try_acquire(&self, now: Instant) -> Result<(Permit, Option<Transition>), Rejected> {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => Ok((Permit { probe: false }, None)),
            State::HalfOpen => Err(Rejected {
                // The probe decides soon; a short hint beats the whole cool-down.
                retry_after: self.cooldown.min(Duration::from_secs(1)),
            }),
            State::Open => {
                let reopens = inner.probe_at.unwrap_or(now);
                if now >= reopens {
                    inner.state = State::HalfOpen;
                    Ok((
                        Permit { probe: true },
                        Some(Transition {
                            from: State::Open,
                            to: State::HalfOpen,
                        }),
                    ))
                } else {
                    Err(Rejected {
                        retry_after: reopens - now,
                    })
                }
            }
        }
    }

    /// The call of `permit` succeeded: failures reset, a probe closes the breaker.
    pub fn on_success(&self, permit: Permit) -> Option<Transition> {
        let mut inner = self.lock();
        inner.failures = 0;
        if permit.probe && inner.state == State::HalfOpen {
            inner.state = State::Closed;
            inner.probe_at = None;
            return Some(Transition {
                from: State::HalfOpen,
                to: State::Closed,
            });
        }
        None
    }

    /// The call of `permit` failed at `now` in a way that counts against the provider: a probe
    /// reopens the breaker, the `threshold`-th consecutive failure opens it.
    pub fn on_failure(&self, permit: Permit, now: Instant) -> Option<Transition> {
        let mut inner = self.lock();
        let from = inner.state;
        if permit.probe && from == State::HalfOpen {
            inner.state = State::Open;
            inner.probe_at = Some(now + self.cooldown);
            return Some(Transition {
                from,
                to: State::Open,
            });
        }
        if from != State::Closed {
            // A call admitted while closed that failed after another call opened the breaker.
            return None;
        }
        inner.failures = inner.failures.saturating_add(1);
        if inner.failures >= self.threshold {
            inner.state = State::Open;
            inner.probe_at = Some(now + self.cooldown);
            inner.failures = 0;
            return Some(Transition {
                from,
                to: State::Open,
            });
        }
        None
    }

    /// The call of `permit` ended without saying anything about the provider's health (a refused
    /// request, a cancelled call): a probe gives its slot back, so the next call probes again.
    pub fn on_neutral(&self, permit: Permit, now: Instant) -> Option<Transition> {
        let mut inner = self.lock();
        if permit.probe && inner.state == State::HalfOpen {
            // Back to open with the cool-down already over: the next acquire probes at once.
            inner.state = State::Open;
            inner.probe_at = Some(now);
            return Some(Transition {
                from: State::HalfOpen,
                to: State::Open,
            });
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The state is three plain fields updated together under the lock; a panic elsewhere
        // cannot leave them inconsistent, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(10);

    fn fail(b: &CircuitBreaker, now: Instant) -> Option<Transition> {
        let (permit, _) = b.try_acquire(now).expect("admitted");
        b.on_failure(permit, now)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let b = CircuitBreaker::new(3, COOLDOWN);
        let t0 = Instant::now();
        assert_eq!(fail(&b, t0), None);
        assert_eq!(fail(&b, t0), None);
        assert_eq!(
            fail(&b, t0),
            Some(Transition {
                from: State::Closed,
                to: State::Open
            })
        );
        assert_eq!(b.state(), State::Open);
        let rejected = b.try_acquire(t0 + Duration::from_secs(4)).unwrap_err();
        assert_eq!(rejected.retry_after, Duration::from_secs(6));
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = CircuitBreaker::new(2, COOLDOWN);
        let t0 = Instant::now();
        assert_eq!(fail(&b, t0), None);
        let (permit, _) = b.try_acquire(t0).unwrap();
        assert_eq!(b.on_success(permit), None);
        assert_eq!(fail(&b, t0), None);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn half_open_probe_closes_on_success() {
        let b = CircuitBreaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        fail(&b, t0);
        let later = t0 + COOLDOWN;
        let (probe, transition) = b.try_acquire(later).unwrap();
        assert_eq!(transition.map(|t| t.to), Some(State::HalfOpen));
        // Only one probe at a time.
        assert!(b.try_acquire(later).is_err());
        assert_eq!(b.on_success(probe).map(|t| t.to), Some(State::Closed));
        assert!(b.try_acquire(later).is_ok());
    }

    #[test]
    fn half_open_probe_reopens_on_failure_with_a_new_cooldown() {
        let b = CircuitBreaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + COOLDOWN + Duration::from_secs(1);
        let (probe, _) = b.try_acquire(t1).unwrap();
        assert_eq!(b.on_failure(probe, t1).map(|t| t.to), Some(State::Open));
        let rejected = b.try_acquire(t1 + Duration::from_secs(3)).unwrap_err();
        assert_eq!(rejected.retry_after, Duration::from_secs(7));
    }

    #[test]
    fn neutral_probe_lets_the_next_call_probe() {
        let b = CircuitBreaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        fail(&b, t0);
        let t1 = t0 + COOLDOWN;
        let (probe, _) = b.try_acquire(t1).unwrap();
        assert_eq!(b.on_neutral(probe, t1).map(|t| t.to), Some(State::Open));
        let (again, transition) = b.try_acquire(t1).unwrap();
        assert_eq!(transition.map(|t| t.to), Some(State::HalfOpen));
        assert_eq!(b.on_success(again).map(|t| t.to), Some(State::Closed));
    }

    #[test]
    fn late_failures_of_calls_admitted_before_opening_do_not_extend_it() {
        let b = CircuitBreaker::new(1, COOLDOWN);
        let t0 = Instant::now();
        let (slow, _) = b.try_acquire(t0).unwrap();
        fail(&b, t0);
        assert_eq!(b.on_failure(slow, t0 + Duration::from_secs(5)), None);
        assert!(b.try_acquire(t0 + COOLDOWN).is_ok());
    }
}
