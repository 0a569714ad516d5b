//! Sampling: a warm-up, then samples until the measuring time is spent, and the statistics
//! of the samples (median, quartiles, extremes).

use std::time::{Duration, Instant};

use super::cases::Problem;

/// Samples a case takes at least, however long they last.
pub const MIN_SAMPLES: usize = 5;

/// Samples a case takes at most (a bound on the memory they hold).
const MAX_SAMPLES: usize = 1 << 20;

/// Measures a case: `sample` makes `calls` calls and returns their time. First a warm-up of
/// a tenth of `time` (at least one sample, not kept), then samples until `time` has passed
/// and at least [`MIN_SAMPLES`] were taken. The first failing sample fails the case.
pub fn measure(
    time: Duration,
    calls: u32,
    mut sample: impl FnMut() -> Result<Duration, Problem>,
) -> Result<Stats, Problem> {
    let warm_up = time / 10;
    let start = Instant::now();
    loop {
        sample()?;
        if start.elapsed() >= warm_up {
            break;
        }
    }
    let per_call = f64::from(calls.max(1));
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < MIN_SAMPLES || (start.elapsed() < time && samples.len() < MAX_SAMPLES) {
        samples.push(sample()?.as_secs_f64() / per_call);
    }
    Ok(Stats::of(samples))
}

/// The statistics of a case's samples, in seconds per call.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// How many samples.
    pub samples: usize,
    /// The median: the figure reported.
    pub median: f64,
    /// The first quartile.
    pub p25: f64,
    /// The third quartile.
    pub p75: f64,
    /// The fastest sample.
    pub min: f64,
    /// The slowest sample.
    pub max: f64,
}

impl Stats {
    /// The statistics of `samples` (at least one).
    pub fn of(mut samples: Vec<f64>) -> Stats {
        samples.sort_by(f64::total_cmp);
        let q = |p: f64| quantile(&samples, p);
        Stats {
            samples: samples.len(),
            median: q(0.5),
            p25: q(0.25),
            p75: q(0.75),
            min: q(0.0),
            max: q(1.0),
        }
    }

    /// The spread: half the interquartile range, as a fraction of the median.
    pub fn spread(&self) -> f64 {
        if self.median > 0.0 {
            (self.p75 - self.p25) / 2.0 / self.median
        } else {
            0.0
        }
    }
}

/// The `p` quantile of sorted `samples`, interpolated linearly (0 for none).
fn quantile(samples: &[f64], p: f64) -> f64 {
    let Some(last) = samples.len().checked_sub(1) else {
        return 0.0;
    };
    let rank = p.clamp(0.0, 1.0) * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let fraction = rank - low as f64;
    samples[low] + (samples[high] - samples[low]) * fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_and_quartiles_interpolate() {
        let stats = Stats::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(
            stats,
            Stats {
                samples: 5,
                median: 3.0,
                p25: 2.0,
                p75: 4.0,
                min: 1.0,
                max: 5.0,
            }
        );
        assert!((stats.spread() - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(Stats::of(vec![1.0, 2.0]).median, 1.5);
    }

    #[test]
    fn a_case_takes_at_least_the_minimum_of_samples() {
        let mut calls = 0;
        let stats = measure(Duration::from_nanos(1), 4, || {
            calls += 1;
            Ok(Duration::from_micros(8))
        })
        .unwrap();
        assert_eq!(stats.samples, MIN_SAMPLES);
        assert_eq!(calls, MIN_SAMPLES + 1, "one warm-up sample");
        assert!((stats.median - 2e-6).abs() < 1e-15);
    }
}
