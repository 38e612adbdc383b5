//! Durations, sizes and rates as people write them: one parser each for the command line, the
//! sandbox options and the daemon's config, so `15m` or `64MiB` means the same everywhere.
//!
//! - [`parse_duration`]: `500ms`, `30s`, `15m`, `6h`, `2d`, a plain number of seconds, decimals
//!   allowed (`1.5h`).
//! - [`parse_size`]: `64MiB`, `512k`, `1G`, `2TB`, plain bytes; binary units (`MB` = `MiB`).
//! - [`parse_rate`]: a size per second (`50MiB/s`, `10M`), at least 1KiB/s.
//!
//! Errors are one sentence saying what was wrong and how to write it, for clap value parsers
//! and config messages alike.

use std::time::Duration;

/// Parses durations like `500ms`, `10s`, `15m`, `6h`, `2d`, `1.5h`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (write it like 30s, 15m, 6h or 2d)"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{s}` (use ms, s, m, h or d)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is too long a duration"))
}

/// Parses sizes like `64MiB`, `512k`, `1G`, `2T`, `1048576` (binary units: `k` = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (write it like 64MiB or 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses rates like `50MiB/s`, `10M` (per second), at least 1KiB/s.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let n = parse_size(t)?;
    if n < 1024 {
        return Err(format!("`{s}` is below the smallest rate, 1KiB/s"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, want_ms) in [
            ("10s", Some(10_000u128)),
            ("500ms", Some(500)),
            ("2m", Some(120_000)),
            ("6h", Some(6 * 3_600_000)),
            ("2d", Some(2 * 86_400_000)),
            ("1.5h", Some(5_400_000)),
            ("30", Some(30_000)),
            (" 15m ", Some(900_000)),
            ("soon", None),
            ("", None),
            ("5w", None),
            ("-1s", None),
            ("1e400s", None),
        ] {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_millis()),
                want_ms,
                "{text}"
            );
        }
    }

    #[test]
    fn sizes_and_rates() {
        for (text, want) in [
            ("64MiB", Some(64u64 << 20)),
            ("512k", Some(512 << 10)),
            ("1G", Some(1 << 30)),
            ("2TB", Some(2 << 40)),
            ("100", Some(100)),
            ("x", None),
            ("5 parsecs", None),
            ("99999999999999T", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text}");
        }
        assert_eq!(parse_rate("50MiB/s").unwrap(), 50 << 20);
        assert_eq!(parse_rate("2M").unwrap(), 2 << 20);
        assert!(parse_rate("10").is_err());
    }
}
