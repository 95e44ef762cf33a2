//! `#[cog_error_handler]`: checks that a function takes `&TaskError` (and optionally `&TaskRunInfo`) and
//! registers it in `ERROR_HANDLERS`, with an `invoke` that calls it and turns its return value into `Result<(), String>`.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{FnArg, Ident, Type};

use crate::signature::{self, Errors, Returns};

/// The attribute's name, as written in messages.
const MACRO: &str = "cog_error_handler";

/// What a handler's parameter list must look like, for messages.
const SHAPE: &str = "`(error: &cog::TaskError)` or `(error: &cog::TaskError, task_run: &cog::TaskRunInfo)`";

/// Expands `#[cog_error_handler]` / `#[cog_error_handler(name = "..")]` on `item`: the function unchanged, plus its registration.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let (name, func) = signature::parse_registered_fn(attr, item, MACRO, &mut errors)?;
    let sig = &func.sig;

    if sig.inputs.is_empty() {
        errors.add(syn::Error::new(sig.paren_token.span.join(), format!("`#[cog_error_handler]` functions take the error they handle: write {SHAPE}")));
    }
    for (i, input) in sig.inputs.iter().enumerate() {
        let ty = match input {
            FnArg::Receiver(receiver) => {
                errors.push(receiver, format!("`#[cog_error_handler]` cannot be applied to methods; make it a free function taking {SHAPE}"));
                continue;
            }
            FnArg::Typed(typed) => &*typed.ty,
        };
        match i {
            0 => check_ref(ty, "first", "TaskError", &mut errors),
            1 => check_ref(ty, "second", "TaskRunInfo", &mut errors),
            _ => errors.push(input, format!("`#[cog_error_handler]` functions take at most two parameters, {SHAPE}; remove this one")),
        }
    }
    let returns = signature::returns(&sig.output);
    if returns == Returns::Value {
        errors.add(syn::Error::new(
            signature::return_span(sig),
            "`#[cog_error_handler]` functions must return `()` or a `Result<_, E>` whose error implements `Display`",
        ));
    }
    errors.finish()?;

    let fn_ident = &sig.ident;
    let handler_name = name.map_or_else(|| fn_ident.unraw().to_string(), |lit| lit.value());
    let invoke = format_ident!("__cog_error_handler_invoke_{}", fn_ident.unraw());
    let error = Ident::new("__cog_error", Span::mixed_site());
    let task_run = Ident::new("__cog_task_run", Span::mixed_site());
    let (task_run_pat, call_args) =
        if sig.inputs.len() == 2 { (task_run.to_token_stream(), quote!(&#error, &#task_run)) } else { (quote!(_), quote!(&#error)) };
    // An error type without `Display` is reported at the return type, not at the attribute.
    let return_span = signature::return_span(sig);
    let output = Ident::new("__cog_output", return_span);
    let convert = match returns {
        Returns::Result => quote_spanned!(return_span=> ::cog::__private::handler_from_result(#output)),
        Returns::Unit | Returns::Value => quote_spanned!(return_span=> ::cog::__private::handler_from_unit(#output)),
    };
    let body = if sig.asyncness.is_some() {
        quote! {
            ::std::boxed::Box::pin(async move {
                let #output = #fn_ident(#call_args).await;
                #convert
            })
        }
    } else {
        quote! {
            ::std::boxed::Box::pin(::cog::__private::run_blocking(move || {
                let #output = #fn_ident(#call_args);
                #convert
            }))
        }
    };

    Ok(quote! {
        #func

        const _: () = {
            #[::cog::__private::linkme::distributed_slice(::cog::__private::ERROR_HANDLERS)]
            #[linkme(crate = ::cog::__private::linkme)]
            static __COG_ERROR_HANDLER_DEF: ::cog::__private::ErrorHandlerDef = ::cog::__private::ErrorHandlerDef {
                name: #handler_name,
                module: ::core::module_path!(),
                invoke: #invoke,
            };

            fn #invoke(
                #error: ::std::sync::Arc<::cog::__private::TaskError>,
                #task_run_pat: ::std::sync::Arc<::cog::__private::TaskRunInfo>,
            ) -> ::cog::__private::BoxFuture<'static, ::core::result::Result<(), ::std::string::String>> {
                #body
            }
        };
    })
}

/// Checks that the parameter in `position` is `&Expected` (a path ending in `expected`, behind a shared reference).
fn check_ref(ty: &Type, position: &str, expected: &str, errors: &mut Errors) {
    let wrong = |what: &str| format!("the {position} parameter of a `#[cog_error_handler]` must be `&cog::{expected}`{what}; handlers take {SHAPE}");
    match signature::strip(ty) {
        Type::Reference(r) if signature::last_segment_is(&r.elem, expected) => {
            if let Some(mutability) = &r.mutability {
                errors.push(mutability, wrong(&format!(", not `&mut {expected}`")));
            } else if let Some(lifetime) = r.lifetime.as_ref().filter(|l| l.ident != "_") {
                errors.push(lifetime, wrong(&format!("; remove the lifetime `{lifetime}`")));
            }
        }
        other if signature::last_segment_is(other, expected) => errors.push(ty, wrong(&format!(", a reference: write `&{expected}`"))),
        _ => errors.push(ty, wrong("")),
    }
}
