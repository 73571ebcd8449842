//! Caller-chosen text that other people read and compare — provider names, investigation
//! titles and descriptions, user emails — in one canonical form.
//!
//! Text is NFKC-normalised (a full-width `Ｐ` is `P`, a no-break space is a space), trimmed, and
//! runs of white space in a one-line label become one space, so that look-alikes compare equal
//! and uniqueness rules hold for what a reader sees. Characters a reader cannot see or that
//! change how the text around them reads are refused rather than silently dropped: controls,
//! format characters (zero-width spaces, joiners, the bidi overrides and isolates that make
//! "evil.exe" display backwards), line and paragraph separators, private-use, surrogate and
//! unassigned code points (Unicode general categories Cc, Cf, Co, Cs, Cn, Zl, Zp). Prose may
//! hold line breaks and tabs.

use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory as _};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {max} characters")]
    TooLong { max: usize },
    #[error(
        "contains U+{:04X}, an invisible, control or text-direction character; remove it",
        u32::from(*.0)
    )]
    Hidden(char),
}

/// A one-line label of 1 to `max_chars` characters, in canonical form.
pub fn label(value: &str, max_chars: usize) -> Result<String, TextError> {
    let text = canonical(value, false)?;
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    bounded(text, max_chars)
}

/// A required form label (a title, a name) checked with [`label`], its error worded for the
/// form: "`field` is required, 1 to `max_chars` characters", or what hidden character to remove.
pub fn required_label(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Result<String, String> {
    label(value.unwrap_or_default(), max_chars).map_err(|e| match e {
        TextError::Hidden(_) => format!("{field} {e}"),
        TextError::Empty | TextError::TooLong { .. } => {
            format!("{field} is required, 1 to {max_chars} characters")
        }
    })
}

/// Free text of at most `max_chars` characters that may run over several lines; may be empty.
pub fn prose(value: &str, max_chars: usize) -> Result<String, TextError> {
    let text = canonical(value, true)?;
    let count = text.chars().count();
    if count > max_chars {
        return Err(TextError::TooLong { max: max_chars });
    }
    Ok(text.trim().to_owned())
}

fn canonical(value: &str, multi_line: bool) -> Result<String, TextError> {
    let text: String = value.nfkc().collect();
    match text.chars().find(|&c| hidden(c, multi_line)) {
        Some(c) => Err(TextError::Hidden(c)),
        None => Ok(text),
    }
}

fn bounded(text: String, max_chars: usize) -> Result<String, TextError> {
    match text.chars().count() {
        0 => Err(TextError::Empty),
        n if n > max_chars => Err(TextError::TooLong { max: max_chars }),
        _ => Ok(text),
    }
}

fn hidden(c: char, multi_line: bool) -> bool {
    if multi_line && matches!(c, '\n' | '\r' | '\t') {
        return false;
    }
    c.general_category_group() == GeneralCategoryGroup::Other
        || matches!(
            c.general_category(),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_become_the_same_label() {
        for look_alike in [
            "Production Sentinel",
            "Production\u{a0}Sentinel",
            "\u{ff30}roduction Sentinel",
            "  Production   Sentinel ",
            "Production\u{3000}Sentinel",
        ] {
            assert_eq!(
                label(look_alike, 100).unwrap(),
                "Production Sentinel",
                "{look_alike:?}"
            );
        }
    }

    #[test]
    fn invisible_and_direction_changing_characters_are_refused() {
        for (text, hidden) in [
            ("Production Sentinel\u{200b}", '\u{200b}'),
            ("Prod\u{202e}lenitneS", '\u{202e}'),
            ("Prod\u{2066}x\u{2069}", '\u{2066}'),
            ("a\u{0}b", '\u{0}'),
            ("a\u{1b}[31mred", '\u{1b}'),
            ("a\u{2028}b", '\u{2028}'),
            ("a\u{feff}", '\u{feff}'),
            ("a\u{e000}", '\u{e000}'),
        ] {
            assert_eq!(label(text, 100), Err(TextError::Hidden(hidden)), "{text:?}");
        }
        assert_eq!(prose("a\u{202e}b", 100), Err(TextError::Hidden('\u{202e}')));
    }

    #[test]
    fn prose_keeps_its_lines_and_labels_their_bounds() {
        assert_eq!(
            prose(" line one\nline\ttwo \n", 100).unwrap(),
            "line one\nline\ttwo"
        );
        assert_eq!(prose("", 100).unwrap(), "");
        assert_eq!(label(" \u{a0} ", 10), Err(TextError::Empty));
        assert_eq!(label("abcdef", 5), Err(TextError::TooLong { max: 5 }));
        assert_eq!(label("a\nb", 5), Err(TextError::Hidden('\n')));
        assert_eq!(label("Café 東京 🚀", 20).unwrap(), "Café 東京 🚀");
    }
}
