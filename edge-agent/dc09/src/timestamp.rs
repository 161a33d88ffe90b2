//! The DC-09 timestamp `_HH:MM:SS,MM-DD-YYYY`, always UTC.

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's algorithm). The
/// server's energy calendar uses it too.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats Unix milliseconds as `_HH:MM:SS,MM-DD-YYYY` (20 characters, with the underscore).
/// Years outside 0..=9999 are clamped so the field keeps its fixed width.
pub fn format(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999);
    format!(
        "_{:02}:{:02}:{:02},{:02}-{:02}-{:04}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        m,
        d,
        y
    )
}

/// Parses `HH:MM:SS,MM-DD-YYYY` (without the underscore) into Unix milliseconds.
pub fn parse(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19 {
        return None;
    }
    let seps = [(2, b':'), (5, b':'), (8, b','), (11, b'-'), (14, b'-')];
    if seps.iter().any(|&(i, c)| b[i] != c) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = &s[r];
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (hh, mi, ss) = (num(0..2)?, num(3..5)?, num(6..8)?);
    let (mo, dd, yy) = (num(9..11)?, num(12..14)?, num(15..19)?);
    if hh > 23 || mi > 59 || ss > 59 || !(1..=12).contains(&mo) || dd == 0 {
        return None;
    }
    let leap = (yy % 4 == 0 && yy % 100 != 0) || yy % 400 == 0;
    let mdays = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if dd > mdays[(mo - 1) as usize] {
        return None;
    }
    let days = days_from_civil(i64::from(yy), mo, dd);
    Some((days * 86_400 + i64::from(hh * 3600 + mi * 60 + ss)) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format(0), "_00:00:00,01-01-1970");
        // 2024-02-29T23:59:58Z = 1709251198
        assert_eq!(format(1_709_251_198_000), "_23:59:58,02-29-2024");
        assert_eq!(parse("23:59:58,02-29-2024"), Some(1_709_251_198_000));
        assert_eq!(parse("12:00:00,02-30-2024"), None);
        assert_eq!(parse("24:00:00,01-01-2024"), None);
    }

    #[test]
    fn roundtrip_many() {
        let mut t = -86_400_000i64 * 365;
        while t < 4_102_444_800_000 {
            let s = format(t);
            assert_eq!(parse(&s[1..]), Some(t - t.rem_euclid(1000)), "{s}");
            t += 7_777_777_123;
        }
    }
}
