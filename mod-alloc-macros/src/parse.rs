//! Token-level parsing of the limit list `key = value, ...` and of
//! `assert_allocs!`'s trailing block.
//!
//! Invariants:
//! - Every token keeps its span, so `validate` can point at the exact token.
//! - Parsing never stops at the first mistake: each comma-separated entry is
//!   parsed on its own and every problem is returned, so the user sees all of
//!   them in one build.
//! - No meaning is given to names or values here (that is `validate`'s job);
//!   this module only knows the *shape* `ident = value`.

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Span, TokenStream, TokenTree};
use quote::ToTokens;

/// One `key = value` entry, value not yet interpreted.
pub(crate) struct Entry {
    pub(crate) key: Ident,
    pub(crate) value: Value,
}

/// The value of an entry, classified by shape.
pub(crate) enum Value {
    /// A single literal: `10`, `"4KB"`, `1.5`, `true`, ...
    Lit(syn::Lit),
    /// `-` followed by a literal.
    Negative { minus: Punct, lit: syn::Lit },
    /// `4 KB` without quotes: a number followed by a word.
    UnquotedUnit { number: Literal, unit: Ident },
    /// Anything else (a path, an expression, several tokens).
    Other(TokenStream),
}

/// Each entry in source order: parsed, or the error that its shape has.
pub(crate) struct Parsed {
    pub(crate) entries: Vec<syn::Result<Entry>>,
}

/// `assert_allocs!`'s input split into its limits and its trailing block.
pub(crate) struct BlockCall {
    pub(crate) limits: TokenStream,
    /// The `{ ... }` group, if the input ends with one.
    pub(crate) block: Option<Group>,
    /// Why there is no block, when there is none.
    pub(crate) block_error: Option<syn::Error>,
}

/// The form every entry should have, quoted in error messages.
pub(crate) const ENTRY_FORM: &str = "a limit such as `max_allocs = 10` or `max_peak = \"4KB\"`";

/// Parses `key = value, key = value, ...` (a trailing comma is fine).
pub(crate) fn limits(tokens: TokenStream) -> Parsed {
    let mut parsed = Parsed {
        entries: Vec::new(),
    };
    let segments = split_on_commas(tokens);
    let last = segments.len().saturating_sub(1);
    for (index, (segment, comma)) in segments.into_iter().enumerate() {
        if segment.is_empty() {
            // Only a trailing comma (or no input at all) may leave a gap.
            if let (true, Some(comma)) = (index != last, comma) {
                let message = format!("expected {ENTRY_FORM} before this comma");
                parsed
                    .entries
                    .push(Err(syn::Error::new_spanned(comma, message)));
            }
            continue;
        }
        parsed.entries.push(entry(segment));
    }
    parsed
}

/// Splits `assert_allocs!`'s input into limits and the final `{ ... }` block.
pub(crate) fn block_call(tokens: TokenStream) -> BlockCall {
    let mut segments = split_on_commas(tokens);
    // Allow one trailing comma after the block.
    if segments.len() > 1 && segments.last().is_some_and(|(s, _)| s.is_empty()) {
        segments.pop();
    }
    let expected = "assert_allocs! needs the code to measure as a trailing block: \
                    `assert_allocs!(max_allocs = 1, { ... })`";
    let Some((last, _)) = segments.pop() else {
        return BlockCall {
            limits: TokenStream::new(),
            block: None,
            block_error: Some(syn::Error::new(Span::call_site(), expected)),
        };
    };
    let block = match last.as_slice() {
        [TokenTree::Group(group)] => brace_group(group),
        _ => None,
    };
    let limits = rejoin(segments);
    match block {
        Some(block) => BlockCall {
            limits,
            block: Some(block),
            block_error: None,
        },
        None => {
            let offending: TokenStream = last.into_iter().collect();
            let error = if offending.is_empty() {
                syn::Error::new(Span::call_site(), expected)
            } else {
                syn::Error::new_spanned(offending.clone(), expected)
            };
            // The last segment may itself be a limit (`assert_allocs!(max_allocs = 1)`):
            // keep it, so its own mistakes are reported too. (`limits` ends
            // with the comma that preceded it.)
            let mut limits = limits;
            if looks_like_entry(&offending) {
                limits.extend(offending);
            }
            BlockCall {
                limits,
                block: None,
                block_error: Some(error),
            }
        }
    }
}

/// `ident = ...`: a limit rather than an expression meant as the body.
fn looks_like_entry(tokens: &TokenStream) -> bool {
    let mut tokens = tokens.clone().into_iter();
    matches!(
        (tokens.next(), tokens.next()),
        (Some(TokenTree::Ident(_)), Some(TokenTree::Punct(eq))) if eq.as_char() == '='
    )
}

/// A brace group, looking through the invisible groups `macro_rules!` adds
/// around `$b:block` / `$e:expr` fragments.
fn brace_group(group: &Group) -> Option<Group> {
    match group.delimiter() {
        Delimiter::Brace => Some(group.clone()),
        Delimiter::None => match &group.stream().into_iter().collect::<Vec<_>>()[..] {
            [TokenTree::Group(inner)] => brace_group(inner),
            _ => None,
        },
        _ => None,
    }
}

/// Top-level comma-separated segments, each with the comma that ends it.
fn split_on_commas(tokens: TokenStream) -> Vec<(Vec<TokenTree>, Option<Punct>)> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    for token in tokens {
        match token {
            TokenTree::Punct(punct) if punct.as_char() == ',' => {
                segments.push((std::mem::take(&mut current), Some(punct)));
            }
            other => current.push(other),
        }
    }
    segments.push((current, None));
    segments
}

/// Joins segments back with their commas.
fn rejoin(segments: Vec<(Vec<TokenTree>, Option<Punct>)>) -> TokenStream {
    let mut out = TokenStream::new();
    for (segment, comma) in segments {
        out.extend(segment);
        out.extend(comma.map(TokenTree::Punct));
    }
    out
}

/// Parses one non-empty segment as `ident = value`.
fn entry(segment: Vec<TokenTree>) -> syn::Result<Entry> {
    let mut tokens = segment.into_iter();
    let key = match tokens.next() {
        Some(TokenTree::Ident(key)) => key,
        Some(other) => {
            let message = format!("expected {ENTRY_FORM}");
            return Err(syn::Error::new_spanned(other, message));
        }
        None => unreachable!("segments passed to `entry` are non-empty"),
    };
    let eq = match tokens.next() {
        Some(TokenTree::Punct(eq)) if eq.as_char() == '=' => eq,
        Some(other) => {
            let message = format!(
                "expected `=` after `{key}`, e.g. `{key} = {}`",
                example(&key)
            );
            return Err(syn::Error::new_spanned(other, message));
        }
        None => {
            let message = format!("`{key}` needs a value: `{key} = {}`", example(&key));
            return Err(syn::Error::new_spanned(key, message));
        }
    };
    let rest: Vec<TokenTree> = tokens.collect();
    if rest.is_empty() {
        let message = format!(
            "missing value for `{key}`; expected e.g. `{key} = {}`",
            example(&key)
        );
        let mut span = key.to_token_stream();
        span.extend(Some(TokenTree::Punct(eq)));
        return Err(syn::Error::new_spanned(span, message));
    }
    Ok(Entry {
        value: value(flatten_invisible(rest)),
        key,
    })
}

/// An example value for `key`, for messages (sizes get a string).
pub(crate) fn example(key: &Ident) -> &'static str {
    if key.to_string().contains("alloc") {
        "10"
    } else {
        "\"4KB\""
    }
}

/// Looks through a lone invisible group (`macro_rules!` fragments).
fn flatten_invisible(tokens: Vec<TokenTree>) -> Vec<TokenTree> {
    match tokens.as_slice() {
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::None => {
            flatten_invisible(group.stream().into_iter().collect())
        }
        _ => tokens,
    }
}

/// Classifies a value by its tokens.
fn value(tokens: Vec<TokenTree>) -> Value {
    match tokens.as_slice() {
        [TokenTree::Literal(lit)] => Value::Lit(syn::Lit::new(lit.clone())),
        [TokenTree::Punct(minus), TokenTree::Literal(lit)] if minus.as_char() == '-' => {
            Value::Negative {
                minus: minus.clone(),
                lit: syn::Lit::new(lit.clone()),
            }
        }
        [TokenTree::Ident(word)] if word == "true" || word == "false" => Value::Lit(
            syn::Lit::Bool(syn::LitBool::new(word == "true", word.span())),
        ),
        [TokenTree::Literal(number), TokenTree::Ident(unit)] => Value::UnquotedUnit {
            number: number.clone(),
            unit: unit.clone(),
        },
        _ => Value::Other(tokens.into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn entries_keep_their_order_and_trailing_comma_is_fine() {
        let parsed = limits(quote!(max_allocs = 10, max_peak = "4KB",));
        let keys: Vec<String> = parsed
            .entries
            .iter()
            .map(|e| e.as_ref().map(|e| e.key.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(keys, ["max_allocs", "max_peak"]);
    }

    #[test]
    fn every_malformed_entry_is_reported() {
        let parsed = limits(quote!(max_allocs, max_bytes =, 5 = 3, max_peak: 4, ok = 1));
        let shapes: Vec<bool> = parsed.entries.iter().map(Result::is_ok).collect();
        assert_eq!(shapes, [false, false, false, false, true]);
    }

    #[test]
    fn a_gap_between_commas_is_an_error() {
        let parsed = limits(quote!(max_allocs = 1,, max_peak = 2));
        assert_eq!(parsed.entries.iter().filter(|e| e.is_err()).count(), 1);
    }

    #[test]
    fn values_are_classified_by_shape() {
        let parsed = limits(quote!(a = -1, b = 4 KB, c = true, d = some::path));
        let kinds: Vec<&str> = parsed
            .entries
            .iter()
            .flatten()
            .map(|e| match e.value {
                Value::Lit(_) => "lit",
                Value::Negative { .. } => "negative",
                Value::UnquotedUnit { .. } => "unquoted",
                Value::Other(_) => "other",
            })
            .collect();
        assert_eq!(kinds, ["negative", "unquoted", "lit", "other"]);
    }

    #[test]
    fn block_call_takes_the_last_brace_group() {
        let call = block_call(quote!(max_allocs = 1, { 1 + 1 }));
        assert!(call.block.is_some());
        assert!(call.block_error.is_none());
        assert_eq!(call.limits.to_string(), quote!(max_allocs = 1,).to_string());
    }

    #[test]
    fn block_call_without_block_is_an_error_that_keeps_the_limits() {
        let call = block_call(quote!(max_allocs = 1));
        assert!(call.block.is_none());
        assert!(call.block_error.is_some());
        assert_eq!(call.limits.to_string(), quote!(max_allocs = 1).to_string());
    }

    #[test]
    fn block_call_with_an_expression_for_a_block_drops_the_expression() {
        let call = block_call(quote!(max_allocs = 1, vec![1]));
        assert!(call.block_error.is_some());
        assert_eq!(call.limits.to_string(), quote!(max_allocs = 1,).to_string());
    }
}
