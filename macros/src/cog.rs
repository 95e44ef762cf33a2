//! `#[cog]`: checks a function's signature and registers it in `COGS`, with an `invoke` that takes each
//! parameter from the task's JSON arguments by name and turns the return value into the task's result,
//! and a description of each parameter (name, type, optional, a checker) for checking arguments early.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, Ident, Lifetime, Pat, Type, TypeImplTrait, TypeReference};

use crate::signature::{self, Errors, Returns};

/// The attribute's name, as written in messages.
const MACRO: &str = "cog";

/// One parameter of the cog function, and what `invoke` passes for it.
enum Param<'a> {
    /// Taken from the JSON arguments under `name`, deserialized as `ty`.
    Arg {
        /// The JSON key: the parameter's name.
        name: String,
        /// The declared type.
        ty: &'a Type,
    },
    /// A parameter of type `TaskContext`: gets a clone of the task's context.
    Context,
}

/// Expands `#[cog]` / `#[cog(name = "..")]` on `item`: the function unchanged, plus its registration.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let (name, func) = signature::parse_registered_fn(attr, item, MACRO, &mut errors)?;
    let sig = &func.sig;
    let params: Vec<Param> = sig.inputs.iter().filter_map(|input| param(input, &mut errors)).collect();
    errors.finish()?;

    let fn_ident = &sig.ident;
    let cog_name = name.map_or_else(|| fn_ident.unraw().to_string(), |lit| lit.value());
    let invoke = format_ident!("__cog_invoke_{}", fn_ident.unraw());
    let args = Ident::new("__cog_args", Span::mixed_site());
    let ctx = Ident::new("__cog_ctx", Span::mixed_site());

    let mut bindings = Vec::with_capacity(params.len());
    let mut takes = Vec::with_capacity(params.len());
    for (i, p) in params.iter().enumerate() {
        let binding = format_ident!("__cog_param_{}", i, span = Span::mixed_site());
        takes.push(match p {
            Param::Arg { name, ty } => quote_spanned! {ty.span()=>
                let #binding = match ::cog::__private::CogArgs::take::<#ty>(&mut #args, #cog_name, #name) {
                    ::core::result::Result::Ok(__cog_value) => __cog_value,
                    ::core::result::Result::Err(__cog_failure) => return ::core::result::Result::Err(__cog_failure),
                };
            },
            Param::Context => quote! {
                let #binding = ::core::clone::Clone::clone(&#ctx);
            },
        });
        bindings.push(binding);
    }
    let param_names = params.iter().filter_map(|p| match p {
        Param::Arg { name, .. } => Some(name),
        Param::Context => None,
    });
    let parameters = params.iter().filter_map(|p| match p {
        Param::Arg { name, ty } => Some(parameter(name, ty)),
        Param::Context => None,
    });
    let args_pat = if params.iter().any(|p| matches!(p, Param::Arg { .. })) { quote!(mut #args) } else { quote!(#args) };
    let ctx_pat = if params.iter().any(|p| matches!(p, Param::Context)) { ctx.to_token_stream() } else { quote!(_) };

    // A return type that cannot be serialized is reported at the return type, not at `#[cog]`.
    let return_span = signature::return_span(sig);
    let output = Ident::new("__cog_output", return_span);
    let convert = match signature::returns(&sig.output) {
        Returns::Result => quote_spanned!(return_span=> ::cog::__private::from_result(#output)),
        Returns::Unit | Returns::Value => quote_spanned!(return_span=> ::cog::__private::from_value(#output)),
    };
    let call = if sig.asyncness.is_some() {
        quote! {
            let #output = #fn_ident(#(#bindings),*).await;
            #convert
        }
    } else {
        quote! {
            ::cog::__private::run_blocking(move || {
                let #output = #fn_ident(#(#bindings),*);
                #convert
            })
            .await
        }
    };

    Ok(quote! {
        #func

        const _: () = {
            #[::cog::__private::linkme::distributed_slice(::cog::__private::COGS)]
            #[linkme(crate = ::cog::__private::linkme)]
            static __COG_DEF: ::cog::__private::CogDef = ::cog::__private::CogDef {
                name: #cog_name,
                module: ::core::module_path!(),
                params: &[#(#param_names),*],
                parameters: &[#(#parameters),*],
                invoke: #invoke,
            };

            fn #invoke(
                #args_pat: ::cog::__private::CogArgs,
                #ctx_pat: ::cog::TaskContext,
            ) -> ::cog::__private::BoxFuture<'static, ::cog::__private::CogOutcome> {
                ::std::boxed::Box::pin(async move {
                    #(#takes)*
                    if let ::core::result::Result::Err(__cog_failure) = ::cog::__private::CogArgs::finish(#args, #cog_name) {
                        return ::core::result::Result::Err(__cog_failure);
                    }
                    #call
                })
            }
        };
    })
}

/// The `Parameter` entry of an argument: its name, its type as written, whether it is an
/// `Option`, and a checker that tries to deserialize a JSON value as that type.
fn parameter(name: &str, ty: &Type) -> TokenStream {
    let type_name = pretty(ty);
    let optional = signature::last_segment_is(ty, "Option");
    quote_spanned! {ty.span()=>
        ::cog::__private::Parameter {
            name: #name,
            type_name: #type_name,
            optional: #optional,
            checker: ::cog::__private::check_argument::<#ty>,
        }
    }
}

/// Reads one parameter, or records why it cannot be taken from JSON.
fn param<'a>(input: &'a FnArg, errors: &mut Errors) -> Option<Param<'a>> {
    let typed = match input {
        FnArg::Receiver(receiver) => {
            errors.push(receiver, "`#[cog]` cannot be applied to methods: the runtime has no `self` to call them on; make it a free function");
            return None;
        }
        FnArg::Typed(typed) => typed,
    };
    let ty = &*typed.ty;
    if signature::last_segment_is(ty, "TaskContext") {
        // Passed by position, not taken from JSON: any pattern will do, `_` included.
        return Some(Param::Context);
    }
    let name = match &*typed.pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(p.ident.unraw().to_string()),
        Pat::Wild(wild) => {
            errors.push(wild, "`#[cog]` parameters need a name: it is the JSON key the argument is taken from; write `name: Type`");
            None
        }
        other => {
            errors.push(
                other,
                "`#[cog]` parameters must be plain names such as `items: Vec<String>`, since each is taken from the JSON arguments by its name; destructure inside the function instead",
            );
            None
        }
    };
    if let Type::Reference(r) = signature::strip(ty)
        && signature::last_segment_is(&r.elem, "TaskContext")
    {
        errors.push(ty, "`#[cog]` takes the context by value: write `ctx: cog::TaskContext` (it is a cheap clone)");
        return None;
    }
    let mut check = OwnedCheck::default();
    check.visit_type(ty);
    if errors.append(check.errors) {
        return None;
    }
    name.map(|name| Param::Arg { name, ty })
}

/// Finds what keeps a parameter type from being deserialized into an owned value.
#[derive(Default)]
struct OwnedCheck {
    /// What was found.
    errors: Errors,
}

impl<'ast> Visit<'ast> for OwnedCheck {
    fn visit_type_reference(&mut self, r: &'ast TypeReference) {
        let fix = match signature::strip(&r.elem) {
            Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => "use `String` instead of `&str`".to_owned(),
            Type::Slice(s) => format!("use `Vec<{0}>` instead of `&[{0}]`", pretty(&s.elem)),
            Type::Path(p) => format!("use `{0}` instead of `&{0}`", pretty(p)),
            _ => "use an owned type instead of a reference".to_owned(),
        };
        self.errors.push(r, format!("`#[cog]` parameters must be owned types that implement `Deserialize`; {fix}"));
    }

    fn visit_type_impl_trait(&mut self, t: &'ast TypeImplTrait) {
        self.errors.push(
            t,
            "`#[cog]` parameters cannot be `impl Trait`: the argument is deserialized from JSON, so name a concrete type that implements `Deserialize`",
        );
    }

    fn visit_lifetime(&mut self, l: &'ast Lifetime) {
        if l.ident != "static" {
            self.errors
                .push(l, format!("`#[cog]` parameters must be owned types that implement `Deserialize`; remove the lifetime `{l}` and use an owned type"));
        }
    }

    fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {
        // Not deserializable anyway; the compiler says so better than a lifetime hint would.
    }
}

/// A type as written, without the spaces `to_string` puts between tokens.
fn pretty(ty: &impl ToTokens) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [(" :: ", "::"), (":: ", "::"), (" <", "<"), ("< ", "<"), (" >", ">"), (" ,", ","), ("& ", "&")] {
        s = s.replace(from, to);
    }
    s
}
