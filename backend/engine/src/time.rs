//! Time arguments as scripts write them: relative (`-5m`, `-30s`, `-1h`, `-2d`, `-500ms`),
//! absolute ns since the epoch (`1714000000000000000`), RFC 3339 (`2026-04-27T10:00:00Z`) or
//! `now`. Hand-written because the grammar is tiny and Pixie-specific; RFC 3339 goes to Arrow's
//! parser.

use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;

/// Resolves `s` to ns since the epoch, relative forms counted from `now_ns`.
pub fn parse_time(s: &str, now_ns: i64) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() || t == "now" {
        return Ok(now_ns);
    }
    if let Some(rest) = t.strip_prefix('-') {
        return relative(rest, t).map(|d| now_ns.saturating_sub(d));
    }
    if let Some(rest) = t.strip_prefix('+') {
        return relative(rest, t).map(|d| now_ns.saturating_add(d));
    }
    if let Ok(ns) = t.parse::<i64>() {
        return Ok(ns);
    }
    string_to_timestamp_nanos(t).map_err(|_| bad(s))
}

fn bad(s: &str) -> String {
    format!(
        "time {s:?} is not understood; write a relative time like \"-5m\", \"-30s\", \"-1h\", \
         \"-2d\", ns since the epoch, or RFC 3339 like \"2026-04-27T10:00:00Z\""
    )
}

/// A duration like `"10s"`, `"1m"`, `"500ms"` (or a plain ns integer) as ns.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(ns) = t.parse::<i64>() {
        return Ok(ns);
    }
    relative(t, t).map_err(|_| {
        format!(
            "duration {s:?} is not understood; write a number and a unit like \"10s\", \
             \"500ms\", \"1m\", \"2h\" (units ns, us, ms, s, m, h, d)"
        )
    })
}

/// `5m` etc. as ns.
fn relative(body: &str, whole: &str) -> Result<i64, String> {
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| bad(whole))?;
    let (num, unit) = body.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad(whole))?;
    let scale: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        "d" => 86_400e9,
        _ => return Err(bad(whole)),
    };
    let ns = n * scale;
    if !ns.is_finite() || ns > i64::MAX as f64 {
        return Err(bad(whole));
    }
    Ok(ns as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn relative_times() {
        assert_eq!(parse_time("-5m", NOW), Ok(NOW - 300_000_000_000));
        assert_eq!(parse_time("-30s", NOW), Ok(NOW - 30_000_000_000));
        assert_eq!(parse_time("-1h", NOW), Ok(NOW - 3_600_000_000_000));
        assert_eq!(parse_time("-500ms", NOW), Ok(NOW - 500_000_000));
        assert_eq!(parse_time("-1.5s", NOW), Ok(NOW - 1_500_000_000));
        assert_eq!(parse_time("+1d", NOW), Ok(NOW + 86_400_000_000_000));
        assert_eq!(parse_time("now", NOW), Ok(NOW));
    }

    #[test]
    fn absolute_times() {
        assert_eq!(parse_time("123456789", NOW), Ok(123_456_789));
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z", NOW),
            Ok(1_700_000_000_000_000_000)
        );
    }

    #[test]
    fn bad_times_name_the_accepted_forms() {
        for s in ["-5x", "-m", "yesterday", "-"] {
            let e = parse_time(s, NOW).unwrap_err();
            assert!(e.contains(&format!("{s:?}")) && e.contains("-5m"), "{e}");
        }
    }
}
