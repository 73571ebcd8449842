//! Validation of the Log Analytics `timespan` parameter. Real Log Analytics rejects a timespan it
//! cannot parse with 400 before running the query, so SoCMate's time-window formatting must be
//! proven against a strict check rather than silently accepted. The emulator never filters rows
//! by it; it only checks the syntax the service accepts:
//!
//! - an ISO 8601 duration: `PT5M`, `PT12H`, `P1D`, `P7D`, `PT1H30M`, `P1DT2H`, `PT0.5S`, `P2W`;
//! - an interval `start/end` of two datetimes (`2024-01-01/2024-01-02`,
//!   `2024-01-01T00:00:00Z/2024-01-01T06:00:00.5+02:00`), with `end` not before `start`;
//! - an interval `start/duration` or `duration/end` (what the Azure SDKs send).

use crate::kql::parse_datetime;

/// Checks `ts`; `Err` carries a message suitable for the 400 response.
pub(crate) fn validate(ts: &str) -> Result<(), String> {
    let t = ts.trim();
    let ok = match t.split_once('/') {
        None => is_duration(t),
        Some((start, end)) => match (parse_datetime(start), parse_datetime(end)) {
            (Some(s), Some(e)) => {
                if e < s {
                    return Err(format!(
                        "The timespan '{ts}' is not valid: the end of the interval is before its start"
                    ));
                }
                true
            }
            (Some(_), None) => is_duration(end),
            (None, Some(_)) => is_duration(start),
            (None, None) => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "The timespan '{ts}' is not valid: expected an ISO 8601 duration (e.g. PT5M, P1D, PT1H30M) \
             or an interval 'start/end' of ISO 8601 datetimes"
        ))
    }
}

/// `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]` with at least one component (and at least one after
/// `T`); only the seconds may have a fraction.
fn is_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(['P', 'p']) else {
        return false;
    };
    let (date, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let Some(date_parts) = components(date, "YMWD") else {
        return false;
    };
    let time_parts = match time {
        None => 0,
        Some(t) => match components(t, "HMS") {
            Some(0) | None => return false,
            Some(n) => n,
        },
    };
    date_parts + time_parts > 0
}

/// Counts `<number><unit>` components whose units appear in `units` order; `None` if malformed.
fn components(s: &str, units: &str) -> Option<usize> {
    let mut remaining_units = units;
    let mut count = 0;
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let mut digits = 0;
        let mut fraction = false;
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() {
                digits += 1;
            } else if (c == '.' || c == ',') && !fraction && digits > 0 {
                fraction = true;
            } else {
                break;
            }
            chars.next();
        }
        let unit = chars.next()?.to_ascii_uppercase();
        if digits == 0 || (fraction && unit != 'S') {
            return None;
        }
        let at = remaining_units.find(unit)?;
        remaining_units = &remaining_units[at + 1..];
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_durations_and_intervals() {
        for ok in [
            "PT5M",
            "P1D",
            "P7D",
            "PT1H30M",
            "PT12H",
            "P1DT2H",
            "PT0.5S",
            "P2W",
            "P1Y2M3DT4H5M6S",
            " PT1H ",
            "2024-01-01/2024-01-02",
            "2024-01-01T00:00:00Z/2024-01-01T06:00:00.5+02:00",
            "2024-01-01T00:00:00.0000000Z/PT1H",
            "PT1H/2024-01-01T00:00:00Z",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "5m",
            "P",
            "PT",
            "P1DT",
            "PT5",
            "PT5X",
            "P1H",
            "PT1M1H",
            "P1.5D",
            "1 hour",
            "yesterday/today",
            "PT1H/PT2H",
            "2024-01-02/2024-01-01",
            "2024-13-01/2024-12-02",
            "/",
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
