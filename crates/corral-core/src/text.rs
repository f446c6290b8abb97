//! Validation and formatting of the small textual values every door receives: names, tags, numbers, booleans.

use crate::error::{Error, ErrorKind, Invalid, Result};

/// Python's `repr()` of a string, which upstream messages embed (`No such domain: 'x'`).
pub fn pyrepr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The qube name rule, checked in upstream's order so the first failing rule names the error.
pub fn validate_vm_name(name: &str) -> Result<()> {
    if name.len() > 31 {
        return Err(Error::value("VM name must be shorter than 32 characters"));
    }
    if name.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '_' | '.' | '-')) {
        return Err(Error::value("VM name cannot start with hyphen, underscore, dot or numbers"));
    }
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !well_formed {
        return Err(Error::value("VM name contains illegal characters"));
    }
    if name == "Domain-0" {
        return Err(Error::value("VM name cannot be 'Domain-0'"));
    }
    if matches!(name, "none" | "default") {
        return Err(Error::value("VM name cannot be 'none' nor 'default'"));
    }
    if name.ends_with("-dm") {
        return Err(Error::value("VM name cannot end with -dm"));
    }
    Ok(())
}

/// Tags: `[A-Za-z0-9_-]+`.
pub fn validate_tag(tag: &str) -> Result<()> {
    // qubesd's messages, word for word.
    if tag.is_empty() {
        return Err(Error::new(ErrorKind::Invalid(Invalid::Tag), "tag cannot be empty"));
    }
    if !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(Error::new(ErrorKind::Invalid(Invalid::Tag), "disallowed characters"));
    }
    Ok(())
}

/// The longest description a volume revision (a REST snapshot) keeps, in characters (oVirt's limit).
pub const MAX_REVISION_DESCRIPTION: usize = 4000;

/// A revision's description: free text up to [`MAX_REVISION_DESCRIPTION`] characters, line breaks and tabs
/// allowed but no other control characters (they cannot be written back in XML).
pub fn validate_revision_description(text: &str) -> Result<()> {
    if text.chars().count() > MAX_REVISION_DESCRIPTION {
        return Err(Error::value(format!(
            "A snapshot description can have at most {MAX_REVISION_DESCRIPTION} characters"
        )));
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Error::value("A snapshot description cannot contain control characters"));
    }
    Ok(())
}

/// Names of features, pools and labels share one character set: `[A-Za-z0-9_.-]+`.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Boolean literals, case-insensitive.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

pub fn format_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A strict unsigned number as the Admin API takes sizes and counts: ASCII digits only, no sign,
/// no leading zero (but `0` itself), fewer than 20 digits.
pub fn parse_strict_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() >= 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Like [`parse_strict_u64`] but also `-1` (revisions_to_keep's "snapshots off"); other negatives
/// parse so that the caller can report them as out of range.
pub fn parse_strict_i64(s: &str) -> Option<i64> {
    match s.strip_prefix('-') {
        Some(rest) => parse_strict_u64(rest).filter(|v| *v > 0).and_then(|v| i64::try_from(v).ok()).map(|v| -v),
        None => parse_strict_u64(s).and_then(|v| i64::try_from(v).ok()),
    }
}

/// qubesd's `validate_number` for untrusted numeric payloads, with its ProtocolError messages: an optional
/// `-` (only if `allow_negative`), then ASCII digits, fewer than 20, no leading zero. `name` is the
/// lowercase noun upstream puts in the message (`volume size`, `revisions to keep`).
pub fn validate_number(untrusted: &[u8], name: &str, allow_negative: bool) -> Result<i64> {
    let (negative, digits) = match untrusted.strip_prefix(b"-") {
        Some(rest) if allow_negative => (true, rest),
        _ => (false, untrusted),
    };
    // Python's str.capitalize(): first letter upper, the rest lower.
    let mut chars = name.chars();
    let capitalized: String = chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Error::protocol(format!("{capitalized} contains non ASCII digits")));
    }
    if digits.len() >= 20 {
        return Err(Error::protocol(format!("{capitalized} is bigger than 19 decimal digits")));
    }
    if digits[0] == b'0' && digits != b"0" {
        return Err(Error::protocol(format!("{capitalized} contains spurious leading zeros")));
    }
    // At most 19 digits always fit in u64; values above i64::MAX are refused like an overlong number.
    let value = std::str::from_utf8(digits).ok().and_then(|s| s.parse::<i64>().ok());
    let value = value.ok_or_else(|| Error::protocol(format!("{capitalized} is bigger than 19 decimal digits")))?;
    Ok(if negative { -value } else { value })
}

/// Python's `int(str)`: surrounding whitespace, an optional sign, digits with single underscores between them.
pub fn parse_python_int(s: &str) -> Option<i64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `int()` of a string, unlike a Python literal, takes leading zeros: int("0400") == 400.
    let v: i64 = clean.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// Printable ASCII plus the whitespace Python's `str.isprintable` check upstream lets through.
pub fn is_printable_ascii_text(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC, for seconds since the epoch: how upstream prints revision times, and libvirt's
/// form of a time.
pub fn iso_utc(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Gregorian date of a day count since 1970-01-01, computed in 400-year eras (146097 days each) whose years start
/// in March so the leap day falls at the end.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_utc(1_795_662_245), "2026-11-26T03:04:05");
        assert_eq!(iso_utc(4_107_542_399), "2100-02-28T23:59:59");
        assert_eq!(iso_utc(4_107_542_400), "2100-03-01T00:00:00");
    }

    #[test]
    fn vm_name_rules_in_order() {
        assert!(validate_vm_name("work").is_ok());
        assert!(validate_vm_name("a-b_c.d9").is_ok());
        assert_eq!(validate_vm_name(&"a".repeat(32)).unwrap_err().kind, ErrorKind::Invalid(Invalid::Value));
        assert!(validate_vm_name("1abc").unwrap_err().message.contains("cannot start"));
        assert!(validate_vm_name("-abc").is_err());
        assert!(validate_vm_name("a b").unwrap_err().message.contains("illegal"));
        assert!(validate_vm_name("none").is_err());
        assert!(validate_vm_name("Domain-0").is_err());
        assert!(validate_vm_name("sys-dm").unwrap_err().message.contains("-dm"));
        assert!(validate_vm_name("").is_err());
    }

    #[test]
    fn revision_descriptions_take_text_and_line_breaks_but_no_other_controls() {
        assert!(validate_revision_description("").is_ok());
        assert!(validate_revision_description("before the upgrade\n\tété ✓").is_ok());
        assert!(validate_revision_description(&"é".repeat(MAX_REVISION_DESCRIPTION)).is_ok());
        let long = validate_revision_description(&"x".repeat(MAX_REVISION_DESCRIPTION + 1)).unwrap_err();
        assert_eq!(long.kind, ErrorKind::Invalid(Invalid::Value));
        assert!(validate_revision_description("bell \u{7}").is_err());
        assert!(validate_revision_description("nul \0").is_err());
        assert!(validate_revision_description("c1 \u{85}").is_err());
    }

    #[test]
    fn strict_numbers_reject_signs_and_leading_zeros() {
        assert_eq!(parse_strict_u64("0"), Some(0));
        assert_eq!(parse_strict_u64("1024"), Some(1024));
        assert_eq!(parse_strict_u64("01"), None);
        assert_eq!(parse_strict_u64("+1"), None);
        assert_eq!(parse_strict_u64(" 1"), None);
        assert_eq!(parse_strict_u64("1234567890123456789"), Some(1_234_567_890_123_456_789));
        assert_eq!(parse_strict_u64("12345678901234567890"), None);
        assert_eq!(parse_strict_i64("-1"), Some(-1));
        assert_eq!(parse_strict_i64("-0"), None);
        assert_eq!(parse_strict_i64("-2"), Some(-2));
    }

    #[test]
    fn validate_number_uses_qubesd_messages() {
        assert_eq!(validate_number(b"0", "volume size", false), Ok(0));
        assert_eq!(validate_number(b"-1", "revisions to keep", true), Ok(-1));
        assert_eq!(validate_number(b"-0", "revisions to keep", true), Ok(0));
        let msg = |p: &[u8], neg| validate_number(p, "volume size", neg).unwrap_err().message;
        assert_eq!(msg(b"-1", false), "Volume size contains non ASCII digits");
        assert_eq!(msg(b"", false), "Volume size contains non ASCII digits");
        assert_eq!(msg(b"1 ", false), "Volume size contains non ASCII digits");
        assert_eq!(msg(b"01", false), "Volume size contains spurious leading zeros");
        assert_eq!(msg(b"10000000000000000000", false), "Volume size is bigger than 19 decimal digits");
        assert_eq!(msg(b"9999999999999999999", false), "Volume size is bigger than 19 decimal digits");
    }

    #[test]
    fn python_int_accepts_what_python_does() {
        assert_eq!(parse_python_int(" 42\n"), Some(42));
        assert_eq!(parse_python_int("-7"), Some(-7));
        assert_eq!(parse_python_int("1_000"), Some(1000));
        assert_eq!(parse_python_int("00"), Some(0));
        assert_eq!(parse_python_int("01"), Some(1));
        assert_eq!(parse_python_int("1__0"), None);
        assert_eq!(parse_python_int("0x10"), None);
        assert_eq!(parse_python_int(""), None);
    }

    #[test]
    fn pyrepr_quotes_like_python() {
        assert_eq!(pyrepr("abc"), "'abc'");
        assert_eq!(pyrepr("a'b"), "\"a'b\"");
        assert_eq!(pyrepr("a'\"b"), "'a\\'\"b'");
        assert_eq!(pyrepr("a\nb"), "'a\\nb'");
    }

    #[test]
    fn bools_case_insensitive() {
        assert_eq!(parse_bool("YES"), Some(true));
        assert_eq!(parse_bool("Off"), Some(false));
        assert_eq!(parse_bool(""), None);
        assert_eq!(parse_bool("2"), None);
    }
}
