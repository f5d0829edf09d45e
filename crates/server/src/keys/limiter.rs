//! Per-key counting: the limits' state and the counters `/metrics` shows.
//!
//! Design choices:
//! - Per-minute limits are leaky buckets: a level that drains at `limit / 60` per second.
//!   A request is admitted while one more request fits under the limit; tokens are charged
//!   as they are generated (prompt tokens when the reply starts), and a key whose token
//!   level is at or over its limit is refused until it drains below. So a burst may run
//!   over by the tokens of requests already admitted (a reply's length is not known when
//!   it is admitted), and the next request then waits for the bucket to drain: no request
//!   is cut off midway. `Retry-After` is the time until the bucket has room.
//! - The daily limit counts tokens per UTC day and resets at midnight UTC, which is what a
//!   person reading "tokens per day" expects; `Retry-After` is the time to midnight.
//! - State is keyed by the key's name and lives outside the policy, so a reload (new
//!   limits, a rotated key under the same name) keeps the counts.
//! - One short mutex per key (a few float operations under it); the admission check and
//!   the per-token charge never wait on another key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::policy::Limits;

/// Which limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Requests,
    Tokens,
    DailyTokens,
    Concurrency,
}

impl Reason {
    pub const ALL: [Reason; 4] = [Reason::Requests, Reason::Tokens, Reason::DailyTokens, Reason::Concurrency];

    /// The limit's name as written in the keys file.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Requests => "requests_per_minute",
            Reason::Tokens => "tokens_per_minute",
            Reason::DailyTokens => "tokens_per_day",
            Reason::Concurrency => "max_concurrent",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A refusal: which limit, its value, and when to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub limit: u64,
    pub retry_after_secs: u64,
}

#[derive(Debug)]
struct Buckets {
    at: Instant,
    requests: f64,
    tokens: f64,
    day: u64,
    day_tokens: u64,
}

/// One key's counts (by name); shared by every request of that key.
#[derive(Debug)]
pub struct KeyState {
    pub name: String,
    buckets: Mutex<Buckets>,
    in_flight: AtomicU64,
    pub requests_total: AtomicU64,
    pub prompt_tokens_total: AtomicU64,
    pub completion_tokens_total: AtomicU64,
    refused: [AtomicU64; 4],
}

fn utc_now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl KeyState {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            buckets: Mutex::new(Buckets {
                at: Instant::now(),
                requests: 0.0,
                tokens: 0.0,
                day: utc_now_secs() / 86_400,
                day_tokens: 0,
            }),
            in_flight: AtomicU64::new(0),
            requests_total: AtomicU64::new(0),
            prompt_tokens_total: AtomicU64::new(0),
            completion_tokens_total: AtomicU64::new(0),
            refused: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drains the buckets to `now` under `limits` and rolls the day over.
    fn drain(b: &mut Buckets, limits: &Limits, now: Instant, utc: u64) {
        let dt = now.saturating_duration_since(b.at).as_secs_f64();
        b.at = now;
        if let Some(l) = limits.requests_per_minute {
            b.requests = (b.requests - dt * l as f64 / 60.0).max(0.0);
        }
        if let Some(l) = limits.tokens_per_minute {
            b.tokens = (b.tokens - dt * l as f64 / 60.0).max(0.0);
        }
        let day = utc / 86_400;
        if day != b.day {
            b.day = day;
            b.day_tokens = 0;
        }
    }

    /// Admits one request under `limits` or says which limit refuses it. An admitted
    /// request holds a [`Permit`] (its concurrency slot) until dropped.
    pub fn admit(self: &Arc<Self>, limits: &Limits) -> Result<Permit, Refusal> {
        self.admit_at(limits, Instant::now(), utc_now_secs())
    }

    fn refuse(&self, r: Refusal) -> Result<Permit, Refusal> {
        self.refused[r.reason.index()].fetch_add(1, Ordering::Relaxed);
        Err(r)
    }

    fn admit_at(self: &Arc<Self>, limits: &Limits, now: Instant, utc: u64) -> Result<Permit, Refusal> {
        if let Some(max) = limits.max_concurrent {
            let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
            if before >= max {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                return self.refuse(Refusal { reason: Reason::Concurrency, limit: max, retry_after_secs: 1 });
            }
        } else {
            self.in_flight.fetch_add(1, Ordering::SeqCst);
        }
        let permit = Permit(self.clone());
        let mut b = self.lock();
        Self::drain(&mut b, limits, now, utc);
        if let Some(l) = limits.requests_per_minute {
            if b.requests + 1.0 > l as f64 {
                let wait = (b.requests + 1.0 - l as f64) * 60.0 / l as f64;
                drop(b);
                return self.refuse(Refusal { reason: Reason::Requests, limit: l, retry_after_secs: ceil_secs(wait) });
            }
        }
        if let Some(l) = limits.tokens_per_minute {
            if b.tokens >= l as f64 {
                // Room for at least one token again.
                let wait = (b.tokens - l as f64 + 1.0) * 60.0 / l as f64;
                drop(b);
                return self.refuse(Refusal { reason: Reason::Tokens, limit: l, retry_after_secs: ceil_secs(wait) });
            }
        }
        if let Some(l) = limits.tokens_per_day {
            if b.day_tokens >= l {
                let wait = 86_400 - utc % 86_400;
                drop(b);
                return self.refuse(Refusal { reason: Reason::DailyTokens, limit: l, retry_after_secs: wait.max(1) });
            }
        }
        if limits.requests_per_minute.is_some() {
            b.requests += 1.0;
        }
        drop(b);
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        Ok(permit)
    }

    /// Charges `prompt` and `completion` tokens to the key (per-minute and daily counts,
    /// and the `/metrics` totals).
    pub fn charge(&self, prompt: u64, completion: u64, limits: &Limits) {
        let n = prompt + completion;
        if n == 0 {
            return;
        }
        self.prompt_tokens_total.fetch_add(prompt, Ordering::Relaxed);
        self.completion_tokens_total.fetch_add(completion, Ordering::Relaxed);
        let mut b = self.lock();
        Self::drain(&mut b, limits, Instant::now(), utc_now_secs());
        if limits.tokens_per_minute.is_some() {
            b.tokens += n as f64;
        }
        b.day_tokens += n;
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn refused(&self, r: Reason) -> u64 {
        self.refused[r.index()].load(Ordering::Relaxed)
    }

    /// Tokens counted today (UTC).
    pub fn day_tokens(&self) -> u64 {
        self.lock().day_tokens
    }
}

fn ceil_secs(s: f64) -> u64 {
    (s.ceil() as u64).max(1)
}

/// A request's concurrency slot; frees it when dropped (when the reply has ended).
#[derive(Debug)]
pub struct Permit(Arc<KeyState>);

impl Permit {
    pub fn state(&self) -> &Arc<KeyState> {
        &self.0
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(rpm: Option<u64>, tpm: Option<u64>, tpd: Option<u64>, conc: Option<u64>) -> Limits {
        Limits { requests_per_minute: rpm, tokens_per_minute: tpm, tokens_per_day: tpd, max_concurrent: conc }
    }

    #[test]
    fn requests_per_minute_refuses_the_next_and_drains_back() {
        let s = Arc::new(KeyState::new("a"));
        let l = limits(Some(2), None, None, None);
        let t0 = Instant::now();
        assert!(s.admit_at(&l, t0, 0).is_ok());
        assert!(s.admit_at(&l, t0, 0).is_ok());
        let r = s.admit_at(&l, t0, 0).expect_err("third in the same instant");
        assert_eq!(r.reason, Reason::Requests);
        assert_eq!(r.retry_after_secs, 30, "one request drains in 60/2 s");
        assert!(s.admit_at(&l, t0 + Duration::from_secs(31), 0).is_ok());
        assert_eq!(s.refused(Reason::Requests), 1);
    }

    #[test]
    fn concurrency_slot_is_held_until_the_permit_drops() {
        let s = Arc::new(KeyState::new("a"));
        let l = limits(None, None, None, Some(1));
        let p = s.admit(&l).expect("first");
        assert_eq!(s.admit(&l).expect_err("second").reason, Reason::Concurrency);
        drop(p);
        assert!(s.admit(&l).is_ok());
    }

    #[test]
    fn tokens_over_the_minute_limit_block_until_drained() {
        let s = Arc::new(KeyState::new("a"));
        let l = limits(None, Some(600), None, None);
        let t0 = Instant::now();
        drop(s.admit_at(&l, t0, 0).expect("first"));
        s.charge(100, 560, &l);
        let r = s.admit_at(&l, Instant::now(), 0).expect_err("over");
        assert_eq!(r.reason, Reason::Tokens);
        assert!((1..=8).contains(&r.retry_after_secs), "{r:?}");
    }

    #[test]
    fn daily_tokens_reset_at_utc_midnight() {
        let s = Arc::new(KeyState::new("a"));
        let l = limits(None, None, Some(10), None);
        let day = 20_000 * 86_400;
        s.lock().day = 20_000;
        s.lock().day_tokens = 10;
        let r = s.admit_at(&l, Instant::now(), day + 86_000).expect_err("spent");
        assert_eq!((r.reason, r.retry_after_secs), (Reason::DailyTokens, 400));
        assert!(s.admit_at(&l, Instant::now(), day + 86_400).is_ok(), "a new day");
    }
}
