//! Parsing and checks shared by `#[cog]` and `#[cog_error_handler]`: the `name = ".."` argument, the
//! function item, the parts of a signature both refuse, and how a return type is turned into a result.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::spanned::Spanned;
use syn::{Item, ItemFn, LitStr, ReturnType, Signature, Type};

/// Gathers every error found in a signature so that one build reports them all.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error spanned at `tokens`.
    pub(crate) fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.add(syn::Error::new_spanned(tokens, message));
    }

    /// Adds an error already built.
    pub(crate) fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Moves `other`'s errors into these; true when it had any.
    pub(crate) fn append(&mut self, other: Errors) -> bool {
        match other.0 {
            Some(error) => {
                self.add(error);
                true
            }
            None => false,
        }
    }

    /// Everything gathered so far followed by `last`, as one error; leaves these empty.
    pub(crate) fn then(&mut self, last: syn::Error) -> syn::Error {
        match self.0.take() {
            Some(mut all) => {
                all.combine(last);
                all
            }
            None => last,
        }
    }

    /// `Err` with everything gathered, or `Ok(())` when nothing was.
    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// The expansion when it succeeded; otherwise the item as written plus a `compile_error!` per error,
/// so the function stays defined and the only errors shown are ours.
pub(crate) fn emit(item: TokenStream, expansion: syn::Result<TokenStream>) -> TokenStream {
    match expansion {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote! {
                #item
                #error
            }
        }
    }
}

/// Parses the attribute's arguments: nothing, or `name = "a_name"`.
fn parse_name(attr: TokenStream, macro_name: &str) -> syn::Result<Option<LitStr>> {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            if name.is_some() {
                return Err(meta.error(format!("`name` is given twice in `#[{macro_name}(..)]`; keep one")));
            }
            let value = meta.value()?;
            let lit: LitStr =
                value.parse().map_err(|e| syn::Error::new(e.span(), format!("`name` takes a string literal: `#[{macro_name}(name = \"my_name\")]`")))?;
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("`#[{macro_name}(name = ..)]` must not be empty; give a name or leave `name` out to use the function's"),
                ));
            }
            name = Some(lit);
            Ok(())
        } else {
            let given = meta.path.to_token_stream().to_string().replace(' ', "");
            Err(meta.error(format!("unknown `#[{macro_name}]` argument `{given}`; the only argument is `name = \"..\"`")))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(name)
}

/// Parses the item the attribute is on, which must be a function with a body.
fn parse_fn(item: TokenStream, macro_name: &str) -> syn::Result<ItemFn> {
    let what = |kind: &str| format!("`#[{macro_name}]` can only be applied to a function (`fn` or `async fn`), not to {kind}");
    let item: Item = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => return Err(syn::Error::new_spanned(item, what("this item"))),
    };
    let (tokens, kind) = match item {
        Item::Fn(f) => return Ok(f),
        Item::Struct(s) => (pair(s.struct_token, s.ident), "a struct"),
        Item::Enum(e) => (pair(e.enum_token, e.ident), "an enum"),
        Item::Union(u) => (pair(u.union_token, u.ident), "a union"),
        Item::Const(c) => (pair(c.const_token, c.ident), "a const"),
        Item::Static(s) => (pair(s.static_token, s.ident), "a static"),
        Item::Type(t) => (pair(t.type_token, t.ident), "a type alias"),
        Item::Trait(t) => (pair(t.trait_token, t.ident), "a trait"),
        Item::Mod(m) => (pair(m.mod_token, m.ident), "a module"),
        Item::Impl(i) => (pair(i.impl_token, i.self_ty), "an impl block"),
        Item::Use(u) => (u.to_token_stream(), "a `use` item"),
        other => (other.to_token_stream(), "this item"),
    };
    Err(syn::Error::new_spanned(tokens, what(kind)))
}

/// Two pieces of an item side by side, to span an error from the first to the second.
fn pair(first: impl ToTokens, second: impl ToTokens) -> TokenStream {
    quote!(#first #second)
}

/// Parses `#[macro_name]` / `#[macro_name(name = "..")]` on a function and applies the
/// checks both macros share; errors that do not stop parsing are collected in `errors`.
pub(crate) fn parse_registered_fn(attr: TokenStream, item: TokenStream, macro_name: &str, errors: &mut Errors) -> syn::Result<(Option<LitStr>, ItemFn)> {
    let name = parse_name(attr, macro_name).unwrap_or_else(|e| {
        errors.add(e);
        None
    });
    let func = parse_fn(item, macro_name).map_err(|e| errors.then(e))?;
    check_common(&func.sig, macro_name, errors);
    Ok((name, func))
}

/// Refuses what neither attribute can call: `unsafe fn`, generics, a `where` clause and variadics.
fn check_common(sig: &Signature, macro_name: &str, errors: &mut Errors) {
    if let Some(unsafety) = &sig.unsafety {
        errors.push(unsafety, format!("`#[{macro_name}]` cannot be applied to an `unsafe fn`; make it a safe function that uses `unsafe` blocks inside"));
    }
    if !sig.generics.params.is_empty() {
        errors
            .push(&sig.generics, format!("`#[{macro_name}]` functions cannot be generic: the runtime calls them with no type to fill in; use concrete types"));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(where_clause, format!("`#[{macro_name}]` functions cannot have a `where` clause; use concrete types"));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(variadic, format!("`#[{macro_name}]` functions cannot be variadic; declare each parameter"));
    }
}

/// The type with any parentheses or invisible groups around it removed.
pub(crate) fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => strip(&p.elem),
        Type::Group(g) => strip(&g.elem),
        other => other,
    }
}

/// Whether `ty` is a path whose last segment is `name` (`TaskContext`, `cog::TaskContext`, ...).
pub(crate) fn last_segment_is(ty: &Type, name: &str) -> bool {
    match strip(ty) {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        _ => false,
    }
}

/// What a function returns, as far as turning it into a result goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Returns {
    /// Nothing, or `()`.
    Unit,
    /// A type whose last path segment is `Result`: `Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`.
    Result,
    /// Any other type.
    Value,
}

/// Classifies a return type; see [`Returns`].
pub(crate) fn returns(output: &ReturnType) -> Returns {
    match output {
        ReturnType::Default => Returns::Unit,
        ReturnType::Type(_, ty) => match strip(ty) {
            Type::Tuple(t) if t.elems.is_empty() => Returns::Unit,
            ty if last_segment_is(ty, "Result") => Returns::Result,
            _ => Returns::Value,
        },
    }
}

/// The span to point at for something about the return type: the type, or the parameter list when there is none.
pub(crate) fn return_span(sig: &Signature) -> proc_macro2::Span {
    match &sig.output {
        ReturnType::Default => sig.paren_token.span.join(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}
