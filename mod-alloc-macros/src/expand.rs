//! Expansion: checked limits become plain calls into `::mod_alloc::__private`.
//!
//! Invariants:
//! - The expansion holds only integers, the size strings as written, and the
//!   call-site macros (`module_path!()`, `file!()`, `line!()`, `column!()`,
//!   `env!("CARGO_MANIFEST_DIR")`, `env!("CARGO_CRATE_NAME")`): all the logic
//!   lives in `mod_alloc`, where it is ordinary, testable Rust.
//! - On any error the output is `compile_error!`s plus the user's code
//!   unchanged, so no follow-on errors appear.
//! - `#[alloc_test]` keeps every other attribute, the visibility and the
//!   return type. The body moves into an inner `fn` with the same return type,
//!   so `return`, `?` and type inference behave exactly as in the original fn.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use crate::parse;
use crate::validate::{self, Errors, Limits};

/// `#[alloc_test(...)]` on `item`.
pub(crate) fn alloc_test(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let limits = validate::limits(
        parse::limits(args),
        &mut errors,
        "`#[alloc_test(max_allocs = 10)]`",
    );
    let function = match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let message = "#[alloc_test] goes on a test function, e.g. \
                           `#[alloc_test(max_allocs = 10)] fn parses_config() { ... }`";
            errors.push(syn::Error::new(Span::call_site(), message));
            return fallback(errors, item);
        }
    };
    check_signature(&function, &mut errors);
    match errors.finish(limits) {
        Ok(limits) => test_fn(function, &limits),
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(quote!(#[allow(dead_code)]));
            out.extend(item);
            out
        }
    }
}

/// `assert_allocs!(..., { body })`.
pub(crate) fn assert_allocs(input: TokenStream) -> TokenStream {
    let call = parse::block_call(input);
    let mut errors = Errors::default();
    let limits = validate::limits(
        parse::limits(call.limits),
        &mut errors,
        "`assert_allocs!(max_allocs = 1, { ... })`",
    );
    if let Some(error) = call.block_error {
        errors.push(error);
    }
    match (errors.finish(limits), call.block) {
        (Ok(limits), Some(block)) => {
            let statics = statics(&limits, None, Span::call_site());
            quote! {
                {
                    #statics
                    ::mod_alloc::__private::run_block(&__MOD_ALLOC_ORIGIN, &__MOD_ALLOC_LIMITS, || #block)
                }
            }
        }
        (Err(error), Some(block)) => {
            let error = error.to_compile_error();
            quote!({ #error (|| #block)() })
        }
        (Err(error), None) => {
            let error = error.to_compile_error();
            // A value of any type that does not diverge, so the code after
            // the call gets neither type errors nor "unreachable" warnings.
            quote!({ #error ::mod_alloc::__private::error_value() })
        }
        (Ok(_), None) => unreachable!("a missing block is an error"),
    }
}

/// The errors, then the item unchanged.
fn fallback(errors: Errors, item: TokenStream) -> TokenStream {
    let mut out = match errors.finish(()) {
        Ok(()) => TokenStream::new(),
        Err(error) => error.to_compile_error(),
    };
    out.extend(item);
    out
}

/// Rejects signatures a test harness cannot call or we cannot wrap.
fn check_signature(function: &syn::ItemFn, errors: &mut Errors) {
    let sig = &function.sig;
    if !sig.inputs.is_empty() {
        let message = "#[alloc_test] functions take no parameters (the test harness passes none); \
                       build the inputs inside the body";
        errors.push(syn::Error::new_spanned(&sig.inputs, message));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "#[alloc_test] functions take no parameters",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        let message =
            "#[alloc_test] functions cannot be generic: the test harness needs one concrete fn";
        errors.push(syn::Error::new_spanned(&sig.generics, message));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "#[alloc_test] functions cannot be `const`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "#[alloc_test] functions cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "#[alloc_test] functions cannot have an `extern` ABI",
        ));
    }
    if let Some(asyncness) = &sig.asyncness {
        if !has_test_attribute(&function.attrs) {
            let message = "on an `async fn`, put #[alloc_test] above an async test attribute \
                           such as `#[tokio::test]`, which runs the future";
            errors.push(syn::Error::new_spanned(asyncness, message));
        }
    }
}

/// True if some attribute is already a test attribute (`#[test]`,
/// `#[tokio::test]`, or the `#[::core::prelude::v1::test]` that
/// `#[tokio::test]` expands to when it runs first).
fn has_test_attribute(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|s| s.ident == "test")
    })
}

/// The `#[test]` fn for valid input.
fn test_fn(function: syn::ItemFn, limits: &Limits) -> TokenStream {
    let syn::ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let name = &sig.ident;
    let output = &sig.output;
    let test_attr = if has_test_attribute(&attrs) {
        TokenStream::new()
    } else {
        quote!(#[test])
    };
    let test_name = name.to_string();
    let test_name = test_name.strip_prefix("r#").unwrap_or(&test_name);
    let statics = statics(limits, Some(test_name), name.span());
    let body = if sig.asyncness.is_some() {
        quote! {
            async fn __mod_alloc_body() #output #block
            #statics
            ::mod_alloc::__private::run_async(&__MOD_ALLOC_ORIGIN, &__MOD_ALLOC_LIMITS, __mod_alloc_body()).await
        }
    } else {
        quote! {
            fn __mod_alloc_body() #output #block
            #statics
            ::mod_alloc::__private::run_test(&__MOD_ALLOC_ORIGIN, &__MOD_ALLOC_LIMITS, __mod_alloc_body)
        }
    };
    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #body
        }
    }
}

/// The two statics the runtime reads: where the call is, and its limits.
fn statics(limits: &Limits, test_name: Option<&str>, span: Span) -> TokenStream {
    let test_name = match test_name {
        Some(name) => quote!(::core::option::Option::Some(#name)),
        None => quote!(::core::option::Option::None),
    };
    let origin = quote_spanned! {span=>
        ::mod_alloc::__private::Origin {
            test_name: #test_name,
            module_path: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
            column: ::core::column!(),
            manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
            crate_name: ::core::env!("CARGO_CRATE_NAME"),
        }
    };
    let fields = limits.iter().map(|(key, limit)| {
        let field = syn::Ident::new(key.name(), Span::call_site());
        let value = match limit {
            None => quote!(::core::option::Option::None),
            Some(limit) => {
                let bytes = proc_macro2::Literal::u64_suffixed(limit.value);
                let written = match &limit.written {
                    Some(text) => quote!(::core::option::Option::Some(#text)),
                    None => quote!(::core::option::Option::None),
                };
                quote!(::core::option::Option::Some(::mod_alloc::__private::Limit {
                    value: #bytes,
                    written: #written,
                }))
            }
        };
        quote!(#field: #value)
    });
    quote! {
        static __MOD_ALLOC_ORIGIN: ::mod_alloc::__private::Origin = #origin;
        static __MOD_ALLOC_LIMITS: ::mod_alloc::__private::Limits = ::mod_alloc::__private::Limits {
            #(#fields,)*
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_attribute_is_added_once() {
        let out = alloc_test(
            quote!(max_allocs = 1),
            quote!(
                fn f() {}
            ),
        )
        .to_string();
        assert_eq!(out.matches("# [test]").count(), 1, "{out}");
        let out = alloc_test(
            quote!(max_allocs = 1),
            quote!(
                #[test]
                fn f() {}
            ),
        )
        .to_string();
        assert_eq!(out.matches("# [test]").count(), 1, "{out}");
    }

    #[test]
    fn sizes_expand_to_bytes_and_the_string_as_written() {
        let out = alloc_test(
            quote!(max_peak = "4KB"),
            quote!(
                fn f() {}
            ),
        )
        .to_string();
        assert!(out.contains("4000u64"), "{out}");
        assert!(out.contains("\"4KB\""), "{out}");
    }

    #[test]
    fn errors_keep_the_item() {
        let out = alloc_test(
            quote!(max_allocs = -1),
            quote!(
                fn keep_me() {}
            ),
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn keep_me"), "{out}");
    }

    #[test]
    fn async_fns_await_run_async() {
        let out = alloc_test(
            quote!(max_allocs = 1),
            quote!(
                #[tokio::test]
                async fn f() {}
            ),
        )
        .to_string();
        assert!(out.contains("run_async"), "{out}");
        assert!(!out.contains("# [test]"), "{out}");
    }
}
