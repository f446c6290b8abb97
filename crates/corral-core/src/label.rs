//! Labels: the colours qubes are drawn with.

use crate::error::{Error, ErrorKind, Invalid, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub index: u32,
    pub name: String,
    /// `0xRRGGBB`, lowercase hex digits.
    pub color: String,
}

/// Indexes up to this one belong to the built-in labels and cannot be removed.
pub const LAST_BUILTIN_INDEX: u32 = 8;

pub fn builtin_labels() -> Vec<Label> {
    [
        (1, "red", "0xcc0000"),
        (2, "orange", "0xf57900"),
        (3, "yellow", "0xedd400"),
        (4, "green", "0x73d216"),
        (5, "gray", "0x555555"),
        (6, "blue", "0x3465a4"),
        (7, "purple", "0x75507b"),
        (8, "black", "0x000000"),
    ]
    .into_iter()
    .map(|(index, name, color)| Label { index, name: name.into(), color: color.into() })
    .collect()
}

/// A label name as a caller may give it: `[A-Za-z0-9_.-]+`; a new label's name also may not be all
/// digits (it would read as an index).
pub fn validate_label_name(name: &str, creation: bool) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(ErrorKind::Invalid(Invalid::Label), "Label name must be set"));
    }
    if creation && name.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::new(ErrorKind::Invalid(Invalid::Label), "Label must not be a digit"));
    }
    if !crate::text::is_safe_name(name) {
        return Err(Error::new(
            ErrorKind::Invalid(Invalid::Label),
            "Label must be in safe set: abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
        ));
    }
    Ok(())
}

/// A label colour payload: `0xRRGGBB` after stripping whitespace; stored lowercase.
pub fn parse_label_color(payload: &[u8]) -> Result<String> {
    // qubesd's checks and messages, in its order.
    let bad = |why: &str| Error::new(ErrorKind::Invalid(Invalid::LabelColor), why);
    if payload.is_empty() {
        return Err(bad("Label value must be set"));
    }
    let text = std::str::from_utf8(payload)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or_else(|| bad("Label value must be encoded in ASCII"))?
        .trim();
    if text.len() != 8 {
        return Err(bad("Label value must have length of 8"));
    }
    let hex = text.strip_prefix("0x").ok_or_else(|| bad("Label value must start with: 0x"))?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("Label value must only contain hexadecimal digits after prefix: 0123456789abcdefABCDEF"));
    }
    Ok(format!("0x{}", hex.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_colors_parse_strictly() {
        assert_eq!(parse_label_color(b" 0xABcdef\n").unwrap(), "0xabcdef");
        assert!(parse_label_color(b"0xabcde").is_err());
        assert!(parse_label_color(b"abcdef12").is_err());
        assert!(parse_label_color(b"0xabcdeg").is_err());
    }

    #[test]
    fn label_names_are_not_numbers_or_paths() {
        assert!(validate_label_name("01", true).is_err());
        assert!(validate_label_name("01", false).is_ok());
        assert!(validate_label_name("../x", true).is_err());
        assert!(validate_label_name("my-label.1", true).is_ok());
    }
}
