//! A channel's rate limit: a token bucket holding up to `count` messages, refilled at
//! `count` per `per`. A message over the limit waits for its token (messages are delayed, not
//! dropped: a resolved message lost to a limit would leave an incident open for good).

use crate::time::Millis;

/// `count` messages per `per_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per_ms: Millis,
}

impl Rate {
    /// "20/min", "1/s", "100/h", "5/10s".
    pub fn parse(text: &str) -> Result<Rate, String> {
        let bad = || format!("`{text}` is not a rate (try \"20/min\", \"1/s\" or \"unlimited\")");
        let (count, per) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = per.trim();
        let per_ms = match per {
            "s" | "sec" | "second" => 1_000,
            "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            other => crate::config::parse_duration_ms(other).map_err(|_| bad())?,
        };
        if count == 0 || per_ms <= 0 {
            return Err(bad());
        }
        Ok(Rate { count, per_ms })
    }
}

/// The bucket. Pure: the caller passes the time.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    last: Millis,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, now: Millis) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: rate.count as f64,
            last: now,
        }
    }

    /// Takes a token at `now`, or says how many milliseconds until one is there.
    pub fn take(&mut self, now: Millis) -> Result<(), Millis> {
        let per_ms = self.rate.count as f64 / self.rate.per_ms as f64;
        let elapsed = (now - self.last).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(self.rate.count as f64);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / per_ms).ceil().max(1.0) as Millis)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases = [
            ("20/min", Some((20, 60_000))),
            ("1/s", Some((1, 1_000))),
            ("100/h", Some((100, 3_600_000))),
            ("5/10s", Some((5, 10_000))),
            ("0/s", None),
            ("20", None),
            ("x/min", None),
            ("3/fortnight", None),
        ];
        for (text, want) in cases {
            let got = Rate::parse(text).ok().map(|r| (r.count, r.per_ms));
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn bucket_bursts_then_paces() {
        let mut b = TokenBucket::new(
            Rate {
                count: 2,
                per_ms: 1_000,
            },
            0,
        );
        // (time, expected) in order: a burst of 2, then one every 500 ms.
        let steps: [(Millis, Result<(), Millis>); 7] = [
            (0, Ok(())),
            (0, Ok(())),
            (0, Err(500)),
            (400, Err(100)),
            (500, Ok(())),
            (500, Err(500)),
            (5_000, Ok(())),
        ];
        for (i, (now, want)) in steps.into_iter().enumerate() {
            assert_eq!(b.take(now), want, "step {i} at {now}");
        }
        // A long pause refills to the burst size, not beyond.
        assert_eq!(b.take(5_000), Ok(()));
        assert!(b.take(5_000).is_err());
    }
}
