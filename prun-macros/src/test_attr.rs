//! `#[prun::test(...)]`: parses the keys, checks the signature, and emits the original function
//! beside a registration that the harness finds through `inventory`.
//!
//! Every error points at the offending token, and all of them are reported together. On error
//! the original function is still emitted so that the IDE keeps working.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprArray, ExprLit, FnArg, ItemFn, Lit, LitInt, LitStr, Meta, ReturnType, Token, Type,
};

const KEYS: &str = "category, group, timeout, retries, threads, ignore, should_panic, isolate";

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(err) => {
            let err = syn::Error::new(err.span(), "#[prun::test] goes on a function")
                .into_compile_error();
            return quote! { #item #err };
        }
    };
    let mut errors = Errors::default();
    let attr = Attr::parse(args, &mut errors);
    let body = fixtures_and_call(&func, &mut errors);
    match errors.into_compile_error() {
        Some(err) => quote! { #func #err },
        None => register(&func, &attr, body),
    }
}

/// Collects every error instead of stopping at the first.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn into_compile_error(self) -> Option<TokenStream> {
        self.0.map(syn::Error::into_compile_error)
    }
}

#[derive(Default)]
struct Attr {
    category: Option<LitStr>,
    groups: Vec<LitStr>,
    timeout_nanos: Option<u64>,
    retries: Option<u32>,
    threads: Option<u32>,
    ignore: Option<Option<LitStr>>,
    should_panic: Option<Option<LitStr>>,
    isolate: bool,
    seen: Vec<String>,
}

impl Attr {
    /// Judges each key on its own, so that every mistake is reported at once.
    fn parse(args: TokenStream, errors: &mut Errors) -> Attr {
        let mut attr = Attr::default();
        let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args) {
            Ok(metas) => metas,
            Err(err) => {
                errors.push(err);
                return attr;
            }
        };
        for meta in metas {
            if let Err(err) = attr.key(&meta) {
                errors.push(err);
            }
        }
        attr
    }

    fn key(&mut self, meta: &Meta) -> syn::Result<()> {
        let path = meta.path();
        let Some(key) = path.get_ident().map(ToString::to_string) else {
            return Err(syn::Error::new(
                path.span(),
                format!("unknown key; expected one of: {KEYS}"),
            ));
        };
        // `group` is the one key that may repeat.
        if key != "group" && self.seen.contains(&key) {
            return Err(syn::Error::new(path.span(), format!("`{key}` is given twice")));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "category" => {
                let lit = as_str(value(meta)?)?;
                check_category(&lit)?;
                self.category = Some(lit);
            }
            "group" | "groups" => {
                for lit in string_or_list(value(meta)?)? {
                    check_name(&lit, "group")?;
                    self.groups.push(lit);
                }
            }
            "timeout" => self.timeout_nanos = Some(parse_timeout(&as_str(value(meta)?)?)?),
            "retries" => {
                let lit = as_int(value(meta)?)?;
                let bad = || syn::Error::new(lit.span(), "`retries` is a whole number, 0 or more");
                self.retries = Some(lit.base10_parse().map_err(|_| bad())?);
            }
            "threads" => {
                let lit = as_int(value(meta)?)?;
                match lit.base10_parse::<u32>() {
                    Ok(threads) if threads > 0 => self.threads = Some(threads),
                    _ => {
                        return Err(syn::Error::new(
                            lit.span(),
                            "`threads` is the number of slots the test takes: 1 or more",
                        ));
                    }
                }
            }
            "ignore" => {
                self.ignore = Some(match meta {
                    Meta::Path(_) => None,
                    _ => Some(as_str(value(meta)?)?),
                });
            }
            "should_panic" => {
                self.should_panic = Some(match meta {
                    Meta::Path(_) => None,
                    Meta::NameValue(_) => Some(as_str(value(meta)?)?),
                    Meta::List(list) => {
                        let mut expected = None;
                        list.parse_nested_meta(|inner| {
                            if inner.path.is_ident("expected") {
                                expected = Some(inner.value()?.parse()?);
                                Ok(())
                            } else {
                                Err(inner.error("expected `expected = \"...\"`"))
                            }
                        })?;
                        expected
                    }
                });
            }
            "isolate" => match meta {
                Meta::Path(_) => self.isolate = true,
                _ => return Err(syn::Error::new(meta.span(), "`isolate` takes no value")),
            },
            _ => {
                return Err(syn::Error::new(
                    path.span(),
                    format!("unknown key `{key}`; expected one of: {KEYS}"),
                ));
            }
        }
        Ok(())
    }
}

fn value(meta: &Meta) -> syn::Result<&Expr> {
    match meta {
        Meta::NameValue(name_value) => Ok(&name_value.value),
        other => {
            let key = other.path().get_ident().map(ToString::to_string).unwrap_or_default();
            Err(syn::Error::new(other.span(), format!("`{key}` needs a value: `{key} = ...`")))
        }
    }
}

fn as_int(expr: &Expr) -> syn::Result<&LitInt> {
    match ungroup(expr) {
        Expr::Lit(ExprLit { lit: Lit::Int(lit), .. }) => Ok(lit),
        other => Err(syn::Error::new(other.span(), "expected a whole number")),
    }
}

fn string_or_list(value: &Expr) -> syn::Result<Vec<LitStr>> {
    match ungroup(value) {
        Expr::Array(ExprArray { elems, .. }) => elems.iter().map(as_str).collect(),
        other => Ok(vec![as_str(other)?]),
    }
}

fn as_str(expr: &Expr) -> syn::Result<LitStr> {
    match ungroup(expr) {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Ok(lit.clone()),
        other => Err(syn::Error::new(other.span(), r#"expected a string, like "db""#)),
    }
}

/// Sees through the invisible groups `macro_rules!` puts around the fragments it passes on.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        other => other,
    }
}

fn check_name(lit: &LitStr, what: &str) -> syn::Result<()> {
    let name = lit.value();
    let ok =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new(
            lit.span(),
            format!("a {what} name is letters, digits, `-` and `_`; got {name:?}"),
        ))
    }
}

/// A category's spelling. Whether it exists is the harness's question, at start, by the rule
/// `cargo prun` uses too (built in, or under `[categories]` in the prun.toml in force then):
/// the macro cannot know which config, or profile, a run will use.
fn check_category(lit: &LitStr) -> syn::Result<()> {
    check_name(lit, "category")
}

fn parse_timeout(lit: &LitStr) -> syn::Result<u64> {
    let bad = |why: &str| {
        syn::Error::new(
            lit.span(),
            format!("`timeout` {why}: write a duration like \"500ms\", \"30s\" or \"2m\""),
        )
    };
    let duration = humantime::parse_duration(&lit.value()).map_err(|_| bad("is not a duration"))?;
    if duration.is_zero() {
        return Err(bad("must be more than zero"));
    }
    u64::try_from(duration.as_nanos()).map_err(|_| bad("is too long"))
}

/// The statements that set up each fixture parameter, and the call to the user's function.
fn fixtures_and_call(func: &ItemFn, errors: &mut Errors) -> TokenStream {
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "a prun test cannot be generic: fixtures are chosen by concrete type",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(variadic.span(), "a prun test cannot be variadic"));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new(abi.span(), "a prun test is a plain Rust `fn`"));
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        errors.push(syn::Error::new(token.span(), "a prun test cannot be `unsafe`"));
    }

    let mut setup = Vec::new();
    let mut call_args = Vec::new();
    for (index, input) in sig.inputs.iter().enumerate() {
        let ty = match input {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new(receiver.span(), "a prun test takes no `self`"));
                continue;
            }
            FnArg::Typed(typed) => &*typed.ty,
        };
        let var = syn::Ident::new(&format!("__prun_fixture_{index}"), Span::mixed_site());
        match ty {
            Type::Reference(reference) if reference.mutability.is_none() => {
                let inner = &reference.elem;
                setup.push(quote_spanned! {inner.span()=>
                    let #var = <#inner as ::prun::__private::Borrow>::acquire(__prun_ctx)?;
                });
                call_args.push(quote! { &*#var });
            }
            Type::Reference(reference) => {
                let inner = &reference.elem;
                setup.push(quote_spanned! {inner.span()=>
                    const _: () = ::prun::__private::require_test_scope(<#inner as ::prun::Fixture>::SCOPE);
                    let mut #var = ::prun::__private::owned::<#inner>(__prun_ctx)?;
                });
                call_args.push(quote! { &mut #var });
            }
            Type::Path(_) => {
                setup.push(quote_spanned! {ty.span()=>
                    const _: () = ::prun::__private::require_test_scope(<#ty as ::prun::Fixture>::SCOPE);
                    let #var = ::prun::__private::owned::<#ty>(__prun_ctx)?;
                });
                call_args.push(quote! { #var });
            }
            other => errors.push(syn::Error::new(
                other.span(),
                "a fixture parameter is a fixture type (`prun::TempDir`), a reference to one \
                 (`&prun::Ctx`), or `&mut` to a test-scoped one",
            )),
        }
    }

    let name = &sig.ident;
    let call = quote! { #name(#(#call_args),*) };
    // Each trait check is on a binding spanned at the user's token, so an error points there.
    // The binding is declared and used through one ident, so hygiene resolves it either way.
    let call = match &sig.asyncness {
        Some(token) => {
            let future = syn::Ident::new("__prun_future", token.span());
            let block_on = quote_spanned! {token.span()=> ::prun::__private::block_on(#future) };
            quote! {{ let #future = #call; #block_on }}
        }
        None => call,
    };
    let output_span = match &sig.output {
        ReturnType::Default => sig.ident.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let returned = syn::Ident::new("__prun_returned", output_span);
    let finish = quote_spanned! {output_span=>
        ::prun::__private::IntoOutcome::into_outcome(#returned)
    };
    quote! {
        #(#setup)*
        let #returned = #call;
        #finish
    }
}

fn register(func: &ItemFn, attr: &Attr, body: TokenStream) -> TokenStream {
    let name = func.sig.ident.to_string();
    let category = attr.category.as_ref().map_or_else(|| "unit".to_owned(), LitStr::value);
    let groups = attr.groups.iter().map(LitStr::value);
    let timeout = match attr.timeout_nanos {
        Some(nanos) => {
            quote! { ::core::option::Option::Some(::core::time::Duration::from_nanos(#nanos)) }
        }
        None => quote! { ::core::option::Option::None },
    };
    let retries = option(attr.retries);
    let threads = attr.threads.unwrap_or(1);
    let ignore = attr.ignore.is_some();
    let ignore_reason = option(attr.ignore.clone().flatten().map(|lit| lit.value()));
    let should_panic = match &attr.should_panic {
        None => quote! { ::prun::__private::ShouldPanic::No },
        Some(None) => quote! { ::prun::__private::ShouldPanic::Yes },
        Some(Some(expected)) => quote! { ::prun::__private::ShouldPanic::WithMessage(#expected) },
    };
    let isolate = attr.isolate;
    quote! {
        #func

        #[doc(hidden)]
        const _: () = {
            fn __prun_run(
                __prun_ctx: &::prun::Ctx,
            ) -> ::core::result::Result<(), ::prun::__private::Failure> {
                #body
            }

            ::prun::__private::inventory::submit! {
                ::prun::__private::TestDef {
                    module_path: ::core::module_path!(),
                    name: #name,
                    file: ::core::file!(),
                    line: ::core::line!(),
                    category: #category,
                    groups: &[#(#groups),*],
                    timeout: #timeout,
                    retries: #retries,
                    threads: #threads,
                    ignore: #ignore,
                    ignore_reason: #ignore_reason,
                    should_panic: #should_panic,
                    isolate: #isolate,
                    run: __prun_run,
                }
            }
        };
    }
}

fn option<T: quote::ToTokens>(value: Option<T>) -> TokenStream {
    match value {
        Some(value) => quote! { ::core::option::Option::Some(#value) },
        None => quote! { ::core::option::Option::None },
    }
}
