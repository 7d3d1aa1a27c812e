//! The rules: which limit names exist, what values they take, and which
//! combinations make sense. Turns parsed entries into [`Limits`] or one
//! combined error.
//!
//! Invariants:
//! - Every problem found becomes an error on the offending token, and all of
//!   them are returned together (`syn::Error::combine`).
//! - A [`Limits`] is only produced when there is no error at all, it has at
//!   least one limit, and each limit was set once.
//!
//! Rules beyond the value syntax (decided here, documented in the crate docs):
//! - Aliases (`max_allocations`, `max_total_bytes`, `max_live`,
//!   `max_peak_bytes`, `max_leaked_bytes`) name the same limit as their
//!   canonical key; setting a limit under two names is an error.
//! - A limit that can never be the one that fails is an error, because it is
//!   almost always a mix-up of two limits: live bytes never exceed the total
//!   allocated, and what is left at the end never exceeds the peak, so
//!   `max_peak > max_bytes` and `max_leaked > max_peak` (or `> max_bytes`)
//!   are rejected.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;

use crate::parse::{self, Entry, Value};
use crate::size;

/// What a limit measures, which decides what values it accepts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Key {
    Allocs,
    Bytes,
    Peak,
    Leaked,
}

impl Key {
    /// Every key, in the order the expansion and the report use.
    const ALL: [Key; 4] = [Key::Allocs, Key::Bytes, Key::Peak, Key::Leaked];

    /// The canonical name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Key::Allocs => "max_allocs",
            Key::Bytes => "max_bytes",
            Key::Peak => "max_peak",
            Key::Leaked => "max_leaked",
        }
    }

    /// Other accepted names.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Key::Allocs => &["max_allocations"],
            Key::Bytes => &["max_total_bytes"],
            Key::Peak => &["max_live", "max_peak_bytes"],
            Key::Leaked => &["max_leaked_bytes"],
        }
    }

    fn from_name(name: &str) -> Option<Key> {
        Key::ALL
            .into_iter()
            .find(|key| key.name() == name || key.aliases().contains(&name))
    }

    fn is_count(self) -> bool {
        self == Key::Allocs
    }
}

/// One checked limit.
pub(crate) struct Limit {
    pub(crate) value: u64,
    /// The size string as written (`"4KB"`), `None` for integer literals.
    pub(crate) written: Option<String>,
    /// The name used (for messages about combinations).
    name: String,
    /// The value tokens, for errors about combinations.
    value_tokens: TokenStream,
}

/// All limits of one macro call, indexed like [`Key::ALL`].
pub(crate) struct Limits {
    slots: [Option<Limit>; 4],
}

impl Limits {
    /// The limit set for `key`, if any.
    pub(crate) fn get(&self, key: Key) -> Option<&Limit> {
        self.slots[key as usize].as_ref()
    }

    /// Every key with its limit, in report order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, Option<&Limit>)> {
        Key::ALL.into_iter().map(move |key| (key, self.get(key)))
    }
}

/// Gathers errors into one.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every error pushed, or `Ok(value)` if there were none.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

/// The list of names, for "unknown limit" messages.
const KEY_LIST: &str = "max_allocs, max_bytes, max_peak, max_leaked";

/// Checks the parsed limits of one macro call.
///
/// `example` is how the call looks with a valid limit, for the
/// "at least one limit" message.
pub(crate) fn limits(parsed: parse::Parsed, errors: &mut Errors, example: &str) -> Limits {
    let mut limits = Limits {
        slots: [None, None, None, None],
    };
    let any_entry = !parsed.entries.is_empty();
    for entry in parsed.entries {
        let Entry { key, value } = match entry {
            Ok(entry) => entry,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let name = key.to_string();
        let Some(which) = Key::from_name(&name) else {
            errors.push(syn::Error::new_spanned(&key, unknown_key_message(&name)));
            continue;
        };
        let checked = match check_value(which, &name, value) {
            Ok(checked) => checked,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let slot = &mut limits.slots[which as usize];
        match slot {
            Some(first) if first.name == name => {
                let message = format!("duplicate limit `{name}`; set each limit once");
                errors.push(syn::Error::new_spanned(&key, message));
            }
            Some(first) => {
                let message = format!(
                    "`{name}` and `{}` are the same limit ({}); set it once",
                    first.name,
                    which.name()
                );
                errors.push(syn::Error::new_spanned(&key, message));
            }
            None => {
                *slot = Some(Limit {
                    value: checked.0,
                    written: checked.1,
                    name,
                    value_tokens: checked.2,
                });
            }
        }
    }
    if !any_entry && errors.0.is_none() {
        let message = format!("expected at least one limit, e.g. {example}; limits: {KEY_LIST}");
        errors.push(syn::Error::new(Span::call_site(), message));
    }
    check_combinations(&limits, errors);
    limits
}

/// The message for a name that is not a limit, with a suggestion if close.
fn unknown_key_message(name: &str) -> String {
    let candidates = Key::ALL
        .into_iter()
        .flat_map(|key| std::iter::once(key.name()).chain(key.aliases().iter().copied()));
    let closest = candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .min()
        .filter(|(distance, _)| *distance <= 3);
    let hint = closest.map_or(String::new(), |(_, c)| format!(" (did you mean `{c}`?)"));
    format!("unknown limit `{name}`; expected one of {KEY_LIST}{hint}")
}

/// Levenshtein distance, for "did you mean" (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// Checks one value for one key: `(value, size as written, value tokens)`.
fn check_value(
    key: Key,
    name: &str,
    value: Value,
) -> syn::Result<(u64, Option<String>, TokenStream)> {
    let expected = if key.is_count() {
        format!("expected a whole number of allocations, e.g. `{name} = 10`")
    } else {
        format!("expected a size: bytes as an integer (`{name} = 4096`) or a string with a unit (`{name} = \"4KB\"`)")
    };
    match value {
        Value::Lit(syn::Lit::Int(int)) => {
            let tokens = int.to_token_stream();
            match int.suffix() {
                "" | "u64" => {}
                suffix => {
                    let message = format!(
                        "unsupported suffix `{suffix}`; limits are u64: write `{}` or `{}u64`",
                        int.base10_digits(),
                        int.base10_digits()
                    );
                    return Err(syn::Error::new_spanned(int, message));
                }
            }
            match int.base10_parse::<u64>() {
                Ok(value) => Ok((value, None, tokens)),
                Err(_) => {
                    let message = format!(
                        "`{int}` is too large: limits are at most u64::MAX (18446744073709551615)"
                    );
                    Err(syn::Error::new_spanned(int, message))
                }
            }
        }
        Value::Lit(syn::Lit::Str(text)) if !key.is_count() => {
            let written = text.value();
            match size::parse(&written) {
                Ok(value) => Ok((value, Some(written), text.to_token_stream())),
                Err(error) => Err(syn::Error::new_spanned(text, error.message(&written))),
            }
        }
        Value::Lit(syn::Lit::Str(text)) => {
            let message = format!(
                "`{name}` is a count, not a size; write it without quotes: `{name} = {}`",
                text.value()
            );
            Err(syn::Error::new_spanned(text, message))
        }
        Value::Lit(syn::Lit::Float(float)) => {
            let message = if key.is_count() {
                format!("`{float}` is not a whole number; {expected}")
            } else {
                format!("`{float}` is not a whole number of bytes; for a fraction of a unit use a string such as `{name} = \"1.5KB\"`")
            };
            Err(syn::Error::new_spanned(float, message))
        }
        Value::Lit(other) => {
            let kind = match &other {
                syn::Lit::Bool(_) => "a bool",
                syn::Lit::Char(_) => "a char",
                syn::Lit::Byte(_) => "a byte",
                syn::Lit::ByteStr(_) => "a byte string",
                _ => "this literal",
            };
            let message = format!("found {kind}; {expected}");
            Err(syn::Error::new_spanned(other, message))
        }
        Value::Negative { minus, lit } => {
            let message = format!("limits cannot be negative; {expected}");
            let mut tokens = minus.to_token_stream();
            tokens.extend(lit.to_token_stream());
            Err(syn::Error::new_spanned(tokens, message))
        }
        Value::UnquotedUnit { number, unit } if !key.is_count() => {
            let message =
                format!("write a size with a unit as a string: `{name} = \"{number}{unit}\"`");
            let mut tokens = number.to_token_stream();
            tokens.extend(unit.to_token_stream());
            Err(syn::Error::new_spanned(tokens, message))
        }
        Value::UnquotedUnit { number, unit } => {
            let mut tokens = number.to_token_stream();
            tokens.extend(unit.to_token_stream());
            Err(syn::Error::new_spanned(
                tokens,
                format!("{expected} (a count has no unit)"),
            ))
        }
        Value::Other(tokens) => {
            let message =
                format!("limits must be literals, checked when the test compiles; {expected}");
            Err(syn::Error::new_spanned(tokens, message))
        }
    }
}

/// Rejects limits that can never be the one that fails (see module docs).
fn check_combinations(limits: &Limits, errors: &mut Errors) {
    let rules = [
        (
            Key::Peak,
            Key::Bytes,
            "live bytes never exceed the total allocated",
        ),
        (
            Key::Leaked,
            Key::Peak,
            "bytes left at the end never exceed the peak",
        ),
        (
            Key::Leaked,
            Key::Bytes,
            "bytes left at the end never exceed the total allocated",
        ),
    ];
    for (looser, tighter, why) in rules {
        let (Some(a), Some(b)) = (limits.get(looser), limits.get(tighter)) else {
            continue;
        };
        if a.value > b.value {
            let message = format!(
                "`{}` ({}) is larger than `{}` ({}) so it can never fail: {why}; lower it or remove it",
                a.name,
                shown(a),
                b.name,
                shown(b)
            );
            errors.push(syn::Error::new_spanned(&a.value_tokens, message));
        }
    }
}

/// A limit as messages show it: the string as written, or bytes.
fn shown(limit: &Limit) -> String {
    match &limit.written {
        Some(written) => format!("\"{written}\" = {} bytes", limit.value),
        None => format!("{} bytes", limit.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn check(tokens: TokenStream) -> Result<Limits, Vec<String>> {
        let mut errors = Errors::default();
        let limits = limits(parse::limits(tokens), &mut errors, "`x`");
        errors
            .finish(limits)
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    fn errors(tokens: TokenStream) -> Vec<String> {
        match check(tokens) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors,
        }
    }

    #[test]
    fn every_key_and_value_form_is_accepted() {
        let limits = check(quote!(
            max_allocs = 1_000u64,
            max_bytes = "1MiB",
            max_peak = 4096,
            max_leaked = "1 KB"
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(limits.get(Key::Allocs).map(|l| l.value), Some(1_000));
        assert_eq!(limits.get(Key::Bytes).map(|l| l.value), Some(1 << 20));
        assert_eq!(limits.get(Key::Peak).map(|l| l.written.clone()), Some(None));
        assert_eq!(
            limits
                .get(Key::Leaked)
                .and_then(|l| l.written.clone())
                .as_deref(),
            Some("1 KB")
        );
    }

    #[test]
    fn aliases_set_the_canonical_limit() {
        let limits = check(quote!(
            max_allocations = 3,
            max_total_bytes = 9,
            max_live = 8,
            max_leaked_bytes = 7
        ))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let values: Vec<Option<u64>> = limits.iter().map(|(_, l)| l.map(|l| l.value)).collect();
        assert_eq!(values, [Some(3), Some(9), Some(8), Some(7)]);
    }

    #[test]
    fn all_errors_are_gathered() {
        let found = errors(quote!(
            max_alloc = 1,
            max_bytes = -1,
            max_peak = 1.5,
            max_leaked = true
        ));
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].contains("did you mean `max_allocs`"), "{found:?}");
        assert!(found[1].contains("cannot be negative"));
        assert!(found[2].contains("not a whole number of bytes"));
        assert!(found[3].contains("found a bool"));
    }

    #[test]
    fn a_limit_under_two_names_is_an_error() {
        let found = errors(quote!(max_peak = 1, max_live = 2));
        assert_eq!(
            found,
            ["`max_live` and `max_peak` are the same limit (max_peak); set it once"]
        );
    }

    #[test]
    fn duplicate_keys_are_an_error() {
        let found = errors(quote!(max_allocs = 1, max_allocs = 2));
        assert_eq!(found, ["duplicate limit `max_allocs`; set each limit once"]);
    }

    #[test]
    fn no_limit_at_all_is_an_error() {
        assert!(errors(quote!())[0].starts_with("expected at least one limit"));
    }

    #[test]
    fn counts_reject_sizes_and_suffixes() {
        assert!(errors(quote!(max_allocs = "10"))[0].contains("is a count"));
        assert!(errors(quote!(max_allocs = 10i32))[0].contains("unsupported suffix `i32`"));
        assert!(errors(quote!(max_allocs = 4 KB))[0].contains("a count has no unit"));
    }

    #[test]
    fn integers_above_u64_max_overflow() {
        assert!(errors(quote!(max_bytes = 18446744073709551616))[0].contains("too large"));
    }

    #[test]
    fn limits_that_can_never_fail_are_rejected() {
        let found = errors(quote!(
            max_bytes = "1KB",
            max_peak = "2KB",
            max_leaked = "3KB"
        ));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with("`max_peak` (\"2KB\" = 2000 bytes) is larger than `max_bytes`")
        );
        assert!(check(quote!(max_bytes = 10, max_peak = 10, max_leaked = 10)).is_ok());
    }

    #[test]
    fn non_literals_are_rejected() {
        assert!(errors(quote!(max_allocs = N))[0].contains("limits must be literals"));
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("max_alloc", "max_allocs"), 1);
        assert_eq!(edit_distance("max_peek", "max_peak"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
