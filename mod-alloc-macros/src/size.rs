//! Size strings such as `"4KB"`, `"4 KiB"` or `"1.5MB"`, turned into bytes at
//! compile time.
//!
//! Grammar (the whole string, nothing around it):
//!
//! ```text
//! size   = number [" "] unit
//! number = digit { digit | "_" } [ "." digit { digit | "_" } ]
//! unit   = "B" | "KB" | "MB" | "GB" | "KiB" | "MiB" | "GiB"
//! ```
//!
//! Decisions, and why:
//! - Units are case-sensitive, because `b` is a bit and `kb` is ambiguous;
//!   a wrong case gets a "did you mean" suggestion instead of a guess.
//! - One optional space between number and unit (`"4 KB"`), as people write
//!   sizes in prose; no leading or trailing spaces.
//! - Decimals are allowed only when the result is a whole number of bytes
//!   (`"1.5KB"` = 1,500 is fine, `"1.5B"` is an error): a budget is exact.
//! - A unit is required: a bare number is written as an integer literal.
//! - Arithmetic is exact (`u128`), and any result above `u64::MAX` is an error.

/// What is wrong with a size string. Rendered by [`SizeError::message`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SizeError {
    /// Not `number [space] unit` (empty, stray characters, `".5KB"`, ...).
    Malformed,
    /// A plain number with no unit.
    MissingUnit,
    /// A unit we do not know, with a suggestion when the case was wrong.
    UnknownUnit {
        unit: String,
        suggestion: Option<&'static str>,
    },
    /// A decimal that does not come out to whole bytes.
    NotWhole,
    /// More than `u64::MAX` bytes.
    Overflow,
}

/// The units we accept, with their factor in bytes.
const UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

/// The unit list as error messages print it.
pub(crate) const UNIT_LIST: &str = "B, KB, MB, GB, KiB, MiB or GiB";

/// Parses a size string into bytes.
pub(crate) fn parse(text: &str) -> Result<u64, SizeError> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(number_len);
    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    let (int_part, frac_part) = split_number(number)?;
    if unit.is_empty() {
        return Err(SizeError::MissingUnit);
    }
    if !unit.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(SizeError::Malformed);
    }
    let factor = unit_factor(unit)?;
    scale(int_part, frac_part, factor)
}

/// Splits `12_3.45` into its digit strings (underscores removed); checks shape.
fn split_number(number: &str) -> Result<(String, String), SizeError> {
    let (int_part, frac_part) = match number.split_once('.') {
        Some((int_part, frac_part)) => (int_part, Some(frac_part)),
        None => (number, None),
    };
    let well_formed =
        |part: &str| part.starts_with(|c: char| c.is_ascii_digit()) && !part.contains('.');
    if !well_formed(int_part) || !frac_part.map_or(true, well_formed) {
        return Err(SizeError::Malformed);
    }
    let digits = |part: &str| part.chars().filter(|c| *c != '_').collect::<String>();
    // Leading and trailing zeros carry no value; dropping them keeps the
    // exact arithmetic below from overflowing on `"0001.5000KB"`.
    let int_digits = digits(int_part).trim_start_matches('0').to_owned();
    let frac_digits = frac_part.map(digits).unwrap_or_default();
    Ok((int_digits, frac_digits.trim_end_matches('0').to_owned()))
}

/// Looks a unit up, suggesting the right spelling when only the case is wrong.
fn unit_factor(unit: &str) -> Result<u64, SizeError> {
    if let Some((_, factor)) = UNITS.iter().find(|(name, _)| *name == unit) {
        return Ok(*factor);
    }
    let suggestion = UNITS
        .iter()
        .map(|(name, _)| *name)
        .find(|name| name.eq_ignore_ascii_case(unit));
    Err(SizeError::UnknownUnit {
        unit: unit.to_owned(),
        suggestion,
    })
}

/// `int_part.frac_part * factor`, exactly, or an error if not whole / too big.
fn scale(int_part: String, frac_part: String, factor: u64) -> Result<u64, SizeError> {
    let mut mantissa: u128 = 0;
    for digit in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(digit - b'0')))
            .ok_or(SizeError::Overflow)?;
    }
    let product = mantissa
        .checked_mul(u128::from(factor))
        .ok_or(SizeError::Overflow)?;
    // A long run of fractional zeros could overflow 10^n even for a small value.
    let divisor = u32::try_from(frac_part.len())
        .ok()
        .and_then(|n| 10u128.checked_pow(n));
    let bytes = match divisor {
        Some(divisor) if product % divisor == 0 => product / divisor,
        Some(_) => return Err(SizeError::NotWhole),
        None if product == 0 => 0,
        None => return Err(SizeError::NotWhole),
    };
    u64::try_from(bytes).map_err(|_| SizeError::Overflow)
}

impl SizeError {
    /// The compile error text for `text`, the string as written.
    pub(crate) fn message(&self, text: &str) -> String {
        match self {
            SizeError::Malformed => format!(
                "malformed size \"{text}\"; expected a number and a unit such as \"4KB\", \"4 KiB\" or \"1.5MB\" (units: {UNIT_LIST})"
            ),
            SizeError::MissingUnit => format!(
                "size \"{text}\" has no unit; write \"{text}B\", or the integer {text} for bytes"
            ),
            SizeError::UnknownUnit { unit, suggestion } => {
                let hint = suggestion.map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
                format!("unknown size unit `{unit}`; expected {UNIT_LIST} (e.g. \"4KB\"){hint}")
            }
            SizeError::NotWhole => format!(
                "size \"{text}\" is not a whole number of bytes; budgets are exact, so use a value that is"
            ),
            SizeError::Overflow => format!(
                "size \"{text}\" is too large: limits are at most u64::MAX (18446744073709551615) bytes"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_units_are_powers_of_ten() {
        assert_eq!(parse("4B"), Ok(4));
        assert_eq!(parse("4KB"), Ok(4_000));
        assert_eq!(parse("4MB"), Ok(4_000_000));
        assert_eq!(parse("4GB"), Ok(4_000_000_000));
    }

    #[test]
    fn binary_units_are_powers_of_two() {
        assert_eq!(parse("4KiB"), Ok(4_096));
        assert_eq!(parse("4MiB"), Ok(4 << 20));
        assert_eq!(parse("4GiB"), Ok(4 << 30));
    }

    #[test]
    fn one_space_before_the_unit_is_allowed() {
        assert_eq!(parse("4 KB"), Ok(4_000));
        assert_eq!(parse("4  KB"), Err(SizeError::Malformed));
        assert_eq!(parse(" 4KB"), Err(SizeError::Malformed));
        assert_eq!(parse("4KB "), Err(SizeError::Malformed));
    }

    #[test]
    fn underscores_separate_digits() {
        assert_eq!(parse("1_000B"), Ok(1_000));
        assert_eq!(parse("_1B"), Err(SizeError::Malformed));
    }

    #[test]
    fn decimals_must_come_out_whole() {
        assert_eq!(parse("1.5KB"), Ok(1_500));
        assert_eq!(parse("0.5KiB"), Ok(512));
        assert_eq!(parse("1.000KB"), Ok(1_000));
        assert_eq!(parse("1.5B"), Err(SizeError::NotWhole));
        assert_eq!(parse("1.0001KB"), Err(SizeError::NotWhole));
    }

    #[test]
    fn malformed_numbers_are_rejected() {
        for text in ["", "KB", ".5KB", "4.KB", "1.2.3KB", "4K B", "4-KB", "-4KB"] {
            assert!(parse(text).is_err(), "{text:?} parsed");
        }
        assert_eq!(parse("4.KB"), Err(SizeError::Malformed));
    }

    #[test]
    fn a_bare_number_needs_a_unit() {
        assert_eq!(parse("4096"), Err(SizeError::MissingUnit));
    }

    #[test]
    fn wrong_case_units_get_a_suggestion() {
        assert_eq!(
            parse("4kb"),
            Err(SizeError::UnknownUnit {
                unit: "kb".into(),
                suggestion: Some("KB")
            })
        );
        assert_eq!(
            parse("4TB"),
            Err(SizeError::UnknownUnit {
                unit: "TB".into(),
                suggestion: None
            })
        );
    }

    #[test]
    fn results_above_u64_max_overflow() {
        assert_eq!(parse("18446744073709551615B"), Ok(u64::MAX));
        assert_eq!(parse("18446744073709551616B"), Err(SizeError::Overflow));
        assert_eq!(parse("20000000000GB"), Err(SizeError::Overflow));
        let many_digits = format!("{}B", "9".repeat(60));
        assert_eq!(parse(&many_digits), Err(SizeError::Overflow));
    }

    #[test]
    fn padding_zeros_do_not_overflow() {
        let zeros = "0".repeat(50);
        assert_eq!(parse(&format!("1.{zeros}KB")), Ok(1_000));
        assert_eq!(parse(&format!("{zeros}2KB")), Ok(2_000));
    }

    #[test]
    fn messages_name_the_expected_form() {
        assert!(parse("4XB")
            .unwrap_err()
            .message("4XB")
            .contains("expected B, KB, MB, GB, KiB, MiB or GiB"));
        assert!(SizeError::MissingUnit.message("10").contains("\"10B\""));
    }
}
