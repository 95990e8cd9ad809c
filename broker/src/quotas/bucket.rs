//! The throttle arithmetic of one metered quota: a token bucket that refills at the quota
//! rate and holds at most one second of it. A response that takes more than is left
//! drives the bucket into debt; the debt divided by the rate is how long the client must
//! wait (`throttle_time_ms`). Over any stretch longer than a second, what a client gets
//! is therefore within one second's worth of the quota, however it batches its requests.

/// The most a throttle may last (Kafka caps it at about its quota window too).
pub const MAX_THROTTLE_MS: u64 = 30_000;

#[derive(Clone, Debug)]
pub struct Bucket {
    /// Units per second.
    rate: f64,
    tokens: f64,
    last: u64,
}

impl Bucket {
    pub fn new(rate: f64, now_ms: u64) -> Bucket {
        Bucket {
            rate,
            tokens: rate,
            last: now_ms,
        }
    }

    /// Follows a changed quota, keeping the debt or credit.
    pub fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
        self.tokens = self.tokens.min(rate);
    }

    fn refill(&mut self, now_ms: u64) {
        let dt = now_ms.saturating_sub(self.last) as f64 / 1000.0;
        self.last = self.last.max(now_ms);
        self.tokens = (self.tokens + dt * self.rate).min(self.rate);
    }

    /// How long, in ms, the client must wait before it may take more (0: it may now).
    pub fn throttle_ms(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        if self.tokens >= 0.0 || self.rate <= 0.0 {
            return 0;
        }
        ((-self.tokens / self.rate * 1000.0).ceil() as u64).min(MAX_THROTTLE_MS)
    }

    /// What may be taken now without a throttle.
    pub fn available(&mut self, now_ms: u64) -> f64 {
        self.refill(now_ms);
        self.tokens.max(0.0)
    }

    /// Takes `amount` and returns the resulting throttle time.
    pub fn take(&mut self, amount: f64, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.tokens -= amount;
        self.throttle_ms(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_one_second_is_free_then_debt_is_waited_off() {
        let mut b = Bucket::new(1000.0, 0);
        assert_eq!(b.take(1000.0, 0), 0);
        // 500 more: half a second of debt.
        assert_eq!(b.take(500.0, 0), 500);
        assert_eq!(b.throttle_ms(250), 250);
        assert_eq!(b.throttle_ms(500), 0);
    }

    #[test]
    fn a_client_that_obeys_throttles_gets_the_quota_rate() {
        let mut b = Bucket::new(10_000.0, 0);
        let (mut now, mut got) = (0u64, 0f64);
        while now < 60_000 {
            // Takes 4 KB per request, and waits whatever it is told.
            let wait = b.take(4096.0, now);
            got += 4096.0;
            now += wait.max(1);
        }
        let rate = got / 60.0;
        assert!((rate - 10_000.0).abs() / 10_000.0 < 0.05, "rate {rate}");
    }

    #[test]
    fn throttles_are_capped() {
        let mut b = Bucket::new(1.0, 0);
        assert_eq!(b.take(1e9, 0), MAX_THROTTLE_MS);
    }
}
