//! Per-second rates of counters that only grow (bytes read, written, received…), as RHEV's
//! `data.current.*` statistics show them: the change since the previous request's sample of the same
//! counters when that is recent enough to mean something, else between two samples `MIN_WINDOW` apart.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::handler::blocking;
use crate::fault::ApiResult;

/// Shorter windows are too coarse to mean anything.
pub const MIN_WINDOW: Duration = Duration::from_millis(100);

/// Samples not asked about again within this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// When the counters were read, and their values.
type Sample = (Instant, Vec<u64>);

static LAST: LazyLock<Mutex<HashMap<String, Sample>>> = LazyLock::new(Default::default);

/// The counters `sample` reads now and their rates per second, keyed by `key` between requests. `None`
/// while `sample` has nothing to read (a halted qube). Blocks on `sample` through the blocking pool.
pub async fn per_second<F>(key: String, sample: F) -> ApiResult<Option<(Vec<u64>, Vec<f64>)>>
where
    F: Fn() -> ApiResult<Option<Vec<u64>>> + Clone + Send + 'static,
{
    let read = |sample: F| async move {
        let at = Instant::now();
        blocking(sample).await.map(|s| s.map(|values| (at, values)))
    };
    let Some((mut at, mut now)) = read(sample.clone()).await? else {
        LAST.lock().remove(&key);
        return Ok(None);
    };
    // A sample from before a restart of the qube (counters back at zero) is no base.
    let previous = LAST
        .lock()
        .get(&key)
        .cloned()
        .filter(|(t, before)| *t < at && before.len() == now.len() && before.iter().zip(&now).all(|(b, n)| b <= n));
    let (base_at, base) = match previous {
        Some((t, before)) if at.duration_since(t) >= MIN_WINDOW => (t, before),
        first_or_recent => {
            let (t, before) = first_or_recent.unwrap_or((at, now.clone()));
            tokio::time::sleep(MIN_WINDOW.saturating_sub(at.duration_since(t))).await;
            match read(sample).await? {
                Some(later) => (at, now) = later,
                None => return Ok(None),
            }
            (t, before)
        }
    };
    {
        let mut last = LAST.lock();
        last.retain(|_, (t, _)| t.elapsed() < FORGET_AFTER);
        last.insert(key, (at, now.clone()));
    }
    let seconds = at.duration_since(base_at).as_secs_f64();
    let rates = now
        .iter()
        .zip(&base)
        .map(|(n, b)| if seconds > 0.0 { n.saturating_sub(*b) as f64 / seconds } else { 0.0 })
        .collect();
    Ok(Some((now, rates)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rates_are_the_growth_per_second_between_two_samples() {
        let start = Instant::now();
        // 1,000 units per second of wall time, 0 for the second counter.
        let sample = move || Ok(Some(vec![start.elapsed().as_millis() as u64, 7]));

        let (_, rates) = per_second("test/grow".into(), sample).await.expect("sampled").expect("values");

        assert!((800.0..=1200.0).contains(&rates[0]), "{rates:?}");
        assert_eq!(rates[1], 0.0);
    }

    #[tokio::test]
    async fn nothing_to_sample_is_none_and_forgets_the_base() {
        let none = || Ok(None);

        assert!(per_second("test/none".into(), none).await.expect("sampled").is_none());
        assert!(!LAST.lock().contains_key("test/none"));
    }

    #[tokio::test]
    async fn counters_that_went_back_start_a_new_window() {
        LAST.lock().insert("test/reset".into(), (Instant::now() - Duration::from_secs(5), vec![1_000_000]));

        let (now, rates) =
            per_second("test/reset".into(), || Ok(Some(vec![10]))).await.expect("sampled").expect("values");

        assert_eq!((now, rates), (vec![10], vec![0.0]));
    }
}
