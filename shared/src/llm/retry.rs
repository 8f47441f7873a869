//! When to try a failed provider call again: exponential backoff with full jitter, honouring
//! the provider's `Retry-After`. Pure: the caller supplies the random number.
//!
//! Full jitter (a uniform delay in `[0, base · 2^(n-1)]`, capped) rather than a fixed schedule,
//! because many `ask` instances retrying a rate-limited provider in lockstep would hit it again
//! all at once. A `Retry-After` from the provider is a floor, not a suggestion; one longer than
//! [`RetryPolicy::max_delay`] ends the retries instead of parking the request.

use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = try once).
    pub max_retries: u32,
    /// The backoff ceiling of the first retry; it doubles with each further retry.
    pub base_delay: Duration,
    /// The longest wait before one retry, the `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), or `None` when no retry is
    /// left or the provider asks for longer than [`Self::max_delay`].
    ///
    /// `unit` is a uniform random number in `[0, 1)`; values outside are clamped.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, unit: f64) -> Option<Duration> {
        if retry == 0 || retry > self.max_retries {
            return None;
        }
        if retry_after.is_some_and(|wait| wait > self.max_delay) {
            return None;
        }
        // 2^(retry-1), saturating: 2^31 · base is far past any max_delay anyway.
        let factor = 1u32.checked_shl(retry - 1).unwrap_or(u32::MAX);
        let ceiling = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let jittered = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        Some(jittered.max(retry_after.unwrap_or_default()))
    }
}

/// Parses an HTTP `Retry-After` value: delay-seconds (`120`) or an HTTP date. A date in the past
/// means "now" (zero); anything unparseable is ignored.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // Gemini's error bodies say "retryDelay": "1.5s"; accept fractional seconds here too.
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate(value)?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only date form RFC 9110 says senders
/// generate.
fn httpdate(value: &str) -> Option<std::time::SystemTime> {
    let mut parts = value.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':');
    let (h, m, s): (u64, u64, u64) = (
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
        hms.next()?.parse().ok()?,
    );
    if parts.next()? != "GMT" || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, i64::try_from(day).ok()?);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        assert_eq!(p.delay(1, None, 0.5), Some(Duration::from_millis(50)));
        assert_eq!(p.delay(2, None, 0.5), Some(Duration::from_millis(100)));
        assert_eq!(p.delay(3, None, 0.5), Some(Duration::from_millis(200)));
        let big = RetryPolicy {
            max_retries: 40,
            ..p
        };
        assert_eq!(big.delay(40, None, 1.0), Some(Duration::from_secs(1)));
    }

    #[test]
    fn jitter_spans_zero_to_ceiling() {
        let p = policy();
        assert_eq!(p.delay(2, None, 0.0), Some(Duration::ZERO));
        assert_eq!(p.delay(2, None, -3.0), Some(Duration::ZERO));
        assert_eq!(p.delay(2, None, 7.0), Some(Duration::from_millis(200)));
    }

    #[test]
    fn retries_run_out() {
        let p = policy();
        assert_eq!(p.delay(0, None, 0.5), None);
        assert_eq!(p.delay(4, None, 0.5), None);
        let none = RetryPolicy {
            max_retries: 0,
            ..p
        };
        assert_eq!(none.delay(1, None, 0.5), None);
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_gives_up() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(700)), 0.1),
            Some(Duration::from_millis(700))
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(30)), 0.1), None);
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in [
            "",
            "soon",
            "-5",
            "NaN",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        assert!(parse_retry_after("Thu, 01 Jan 2099 00:00:00 GMT", SystemTime::now()).is_some());
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1994, 11, 6), 9_075);
    }
}
