//! Inflow per partition: records appended per second, from log end offsets sampled over
//! time (at least a second apart), smoothed.

use std::collections::HashMap;

use crate::groups::consumer_protocol::TopicPartition;

/// Samples are taken at least this far apart (ms).
const MIN_SPACING_MS: u64 = 1000;

#[derive(Debug, Default)]
pub struct InflowMeter {
    samples: HashMap<TopicPartition, Sample>,
}

#[derive(Debug)]
struct Sample {
    at: u64,
    log_end: i64,
    rate: Option<f64>,
}

impl InflowMeter {
    /// Records that `tp` ends at `log_end` at `now` (ms); returns its inflow rate
    /// (records/s), 0 until two samples are at least a second apart.
    pub fn observe(&mut self, tp: &TopicPartition, log_end: i64, now: u64) -> f64 {
        let s = self.samples.entry(tp.clone()).or_insert(Sample {
            at: now,
            log_end,
            rate: None,
        });
        let dt = now.saturating_sub(s.at);
        if dt >= MIN_SPACING_MS {
            // A log that moved back (records deleted, topic recreated) counts as no inflow.
            let sample = (log_end - s.log_end).max(0) as f64 * 1000.0 / dt as f64;
            s.rate = Some(match s.rate {
                Some(r) => 0.5 * r + 0.5 * sample,
                None => sample,
            });
            s.at = now;
            s.log_end = log_end;
        }
        s.rate.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_from_samples_a_second_apart() {
        let mut m = InflowMeter::default();
        let tp = ("t".to_string(), 0);
        assert_eq!(m.observe(&tp, 100, 0), 0.0);
        assert_eq!(m.observe(&tp, 150, 500), 0.0, "too close: no rate yet");
        assert_eq!(m.observe(&tp, 1100, 1000), 1000.0);
        assert_eq!(m.observe(&tp, 1100, 2000), 500.0, "smoothed towards 0");
        assert_eq!(
            m.observe(&tp, 0, 3000),
            250.0,
            "a log that moved back adds nothing"
        );
    }
}
