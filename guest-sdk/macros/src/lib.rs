//! The attribute macro of ccvm's contract API. Use it through `ccvm_guest_sdk::contract`, whose
//! documentation shows it at work; this crate only turns an `impl` block into a `Contract`.
//!
//! `#[contract]` reads the block's methods marked `#[transaction]`, `#[before]`, `#[after]` and
//! `#[unknown]` (and parameters marked `#[transient]`), removes those markers, and adds an
//! implementation of `ccvm_guest_sdk::contract::Contract` that routes a transaction name to its
//! method, decodes the arguments, encodes the result and describes it all as Fabric's contract
//! metadata.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, LitStr, Meta, Pat,
    PathArguments, ReturnType, Token, Type, parse_macro_input,
};

/// Turns an `impl` block into a contract; see `ccvm_guest_sdk::contract`.
#[proc_macro_attribute]
pub fn contract(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = parse_macro_input!(attr as ContractOptions);
    let block = parse_macro_input!(item as ItemImpl);
    match expand(options, block) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// `#[contract]` or `#[contract(name = "...")]`.
#[derive(Default)]
struct ContractOptions {
    name: Option<LitStr>,
}

impl Parse for ContractOptions {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Self::default();
        for meta in Punctuated::<Meta, Token![,]>::parse_terminated(input)? {
            match &meta {
                Meta::NameValue(pair) if pair.path.is_ident("name") => {
                    options.name = Some(string_value(&pair.value)?);
                }
                _ => {
                    return Err(syn::Error::new(
                        meta.span(),
                        "expected `name = \"...\"`: the contract's name in Fabric",
                    ));
                }
            }
        }
        Ok(options)
    }
}

fn string_value(expr: &syn::Expr) -> syn::Result<LitStr> {
    match expr {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(text),
            ..
        }) => Ok(text.clone()),
        other => Err(syn::Error::new(other.span(), "expected a string literal")),
    }
}

/// What one method of the block is to the contract.
enum Role {
    Transaction { name: LitStr, evaluate: bool },
    Before,
    After,
    Unknown,
}

/// One argument of a transaction: positional, or read from the transient data under `key`.
struct Argument {
    ident: syn::Ident,
    ty: Type,
    transient: Option<LitStr>,
}

fn expand(options: ContractOptions, mut block: ItemImpl) -> syn::Result<TokenStream2> {
    let self_ty = block.self_ty.clone();
    let contract_name = match options.name {
        Some(name) => name,
        None => LitStr::new(&type_name(&self_ty)?, self_ty.span()),
    };
    let mut routes = Vec::new();
    let mut descriptions = Vec::new();
    let mut checks = Vec::new();
    let mut hooks = Hooks::default();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(role) = take_role(method)? else {
            continue;
        };
        let ident = method.sig.ident.clone();
        match role {
            Role::Transaction { name, evaluate } => {
                let arguments = take_arguments(method)?;
                let returns = returned_value(&method.sig.output);
                routes.push(route(&name, &ident, &arguments, returns.is_fallible));
                descriptions.push(description(&name, evaluate, &arguments, &returns));
                checks.extend(arguments.iter().map(|argument| {
                    let ty = &argument.ty;
                    quote_spanned! {ty.span()=>
                        ::ccvm_guest_sdk::contract::__private::is_argument::<#ty>();
                    }
                }));
                if let Some(ty) = &returns.value {
                    checks.push(quote_spanned! {ty.span()=>
                        ::ccvm_guest_sdk::contract::__private::is_returned::<#ty>();
                    });
                }
            }
            Role::Before => set_hook(&mut hooks.before, method, "before")?,
            Role::After => set_hook(&mut hooks.after, method, "after")?,
            Role::Unknown => set_hook(&mut hooks.unknown, method, "unknown")?,
        }
    }
    let before = hooks.before.map(|ident| {
        quote! {
            fn before_transaction(
                &self,
                stub: &mut ::ccvm_guest_sdk::Stub<'_>,
                function: &str,
            ) -> ::core::result::Result<(), ::std::string::String> {
                self.#ident(stub, function).map_err(|e| e.to_string())
            }
        }
    });
    let after = hooks.after.map(|ident| {
        quote! {
            fn after_transaction(
                &self,
                stub: &mut ::ccvm_guest_sdk::Stub<'_>,
                function: &str,
                payload: &[u8],
            ) -> ::core::result::Result<(), ::std::string::String> {
                self.#ident(stub, function, payload).map_err(|e| e.to_string())
            }
        }
    });
    let unknown = hooks.unknown.map(|ident| {
        quote! {
            fn unknown_transaction(
                &self,
                stub: &mut ::ccvm_guest_sdk::Stub<'_>,
                function: &str,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                ::ccvm_guest_sdk::contract::__private::payload(self.#ident(stub, function))
            }
        }
    });
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    Ok(quote! {
        #block

        impl #impl_generics ::ccvm_guest_sdk::contract::Contract for #self_ty #where_clause {
            fn name(&self) -> &str {
                #contract_name
            }

            fn call(
                &self,
                stub: &mut ::ccvm_guest_sdk::Stub<'_>,
                function: &str,
                args: &[::std::vec::Vec<u8>],
            ) -> ::core::option::Option<
                ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String>,
            > {
                use ::ccvm_guest_sdk::contract::__private as private;
                match function {
                    #(#routes)*
                    _ => ::core::option::Option::None,
                }
            }

            fn transactions(
                &self,
                schemas: &mut ::ccvm_guest_sdk::contract::SchemaGenerator,
            ) -> ::std::vec::Vec<::ccvm_guest_sdk::contract::TransactionMetadata> {
                ::std::vec![#(#descriptions),*]
            }

            #before
            #after
            #unknown
        }

        const _: () = {
            #[allow(dead_code, reason = "checks argument and result types at compile time")]
            fn check_transaction_types() {
                #(#checks)*
            }
        };
    })
}

/// The hook methods of the block.
#[derive(Default)]
struct Hooks {
    before: Option<syn::Ident>,
    after: Option<syn::Ident>,
    unknown: Option<syn::Ident>,
}

/// Takes `method` as the contract's `which` hook, refusing a second one.
fn set_hook(slot: &mut Option<syn::Ident>, method: &ImplItemFn, which: &str) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            method.sig.ident.span(),
            format!("a contract has at most one #[{which}] method"),
        ));
    }
    *slot = Some(method.sig.ident.clone());
    Ok(())
}

/// The last segment of the contract type's path: its default name.
fn type_name(ty: &Type) -> syn::Result<String> {
    match ty {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.to_string())
            .ok_or_else(|| syn::Error::new(ty.span(), "expected a type name")),
        other => Err(syn::Error::new(
            other.span(),
            "#[contract] goes on the `impl` block of a named type",
        )),
    }
}

/// Removes the contract markers from `method` and says what they made it.
fn take_role(method: &mut ImplItemFn) -> syn::Result<Option<Role>> {
    let mut role = None;
    let mut kept = Vec::new();
    for attribute in method.attrs.drain(..) {
        let found = if attribute.path().is_ident("transaction") {
            Some(transaction_role(&attribute, &method.sig.ident)?)
        } else if attribute.path().is_ident("before") {
            Some(Role::Before)
        } else if attribute.path().is_ident("after") {
            Some(Role::After)
        } else if attribute.path().is_ident("unknown") {
            Some(Role::Unknown)
        } else {
            kept.push(attribute);
            None
        };
        if let Some(found) = found {
            if role.is_some() {
                return Err(syn::Error::new(
                    method.sig.ident.span(),
                    "a method has at most one of #[transaction], #[before], #[after], #[unknown]",
                ));
            }
            role = Some(found);
        }
    }
    method.attrs = kept;
    Ok(role)
}

/// `#[transaction]`, `#[transaction(evaluate)]`, `#[transaction(name = "...")]` or both.
fn transaction_role(attribute: &Attribute, method: &syn::Ident) -> syn::Result<Role> {
    let mut name = None;
    let mut evaluate = false;
    if !matches!(attribute.meta, Meta::Path(_)) {
        attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("evaluate") {
                evaluate = true;
                Ok(())
            } else if meta.path.is_ident("submit") {
                evaluate = false;
                Ok(())
            } else if meta.path.is_ident("name") {
                name = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else {
                Err(meta.error("expected `evaluate`, `submit` or `name = \"...\"`"))
            }
        })?;
    }
    let name =
        name.unwrap_or_else(|| LitStr::new(&pascal_case(&method.to_string()), method.span()));
    Ok(Role::Transaction { name, evaluate })
}

/// `create_asset` → `CreateAsset`, the way Fabric's contract APIs name transactions.
fn pascal_case(name: &str) -> String {
    name.trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

/// The transaction's arguments after `&self` and the stub, with `#[transient]` markers taken off.
fn take_arguments(method: &mut ImplItemFn) -> syn::Result<Vec<Argument>> {
    let span = method.sig.ident.span();
    let mut inputs = method.sig.inputs.iter_mut();
    if !matches!(inputs.next(), Some(FnArg::Receiver(_))) {
        return Err(syn::Error::new(
            span,
            "a transaction takes `&self`, then the stub (`stub: &mut Stub<'_>`)",
        ));
    }
    if inputs.next().is_none() {
        return Err(syn::Error::new(
            span,
            "a transaction takes the stub (`stub: &mut Stub<'_>`) after `&self`",
        ));
    }
    let mut arguments = Vec::new();
    for input in inputs {
        let FnArg::Typed(typed) = input else {
            return Err(syn::Error::new(input.span(), "unexpected receiver"));
        };
        let Pat::Ident(pattern) = typed.pat.as_ref() else {
            return Err(syn::Error::new(
                typed.pat.span(),
                "a transaction argument needs a plain name: it is the parameter's name in the metadata",
            ));
        };
        let ident = pattern.ident.clone();
        let mut transient = None;
        let mut kept = Vec::new();
        for attribute in typed.attrs.drain(..) {
            if attribute.path().is_ident("transient") {
                transient = Some(match &attribute.meta {
                    Meta::Path(_) => LitStr::new(&ident.to_string(), ident.span()),
                    _ => attribute.parse_args::<LitStr>()?,
                });
            } else {
                kept.push(attribute);
            }
        }
        typed.attrs = kept;
        arguments.push(Argument {
            ident,
            ty: (*typed.ty).clone(),
            transient,
        });
    }
    Ok(arguments)
}

/// What a transaction method returns: the value's type (none for `()`), and whether it comes
/// in a `Result`.
struct Returned {
    value: Option<Type>,
    is_fallible: bool,
}

fn returned_value(output: &ReturnType) -> Returned {
    let ReturnType::Type(_, ty) = output else {
        return Returned {
            value: None,
            is_fallible: false,
        };
    };
    if let Type::Path(path) = ty.as_ref()
        && let Some(last) = path.path.segments.last()
        && last.ident == "Result"
        && let PathArguments::AngleBracketed(generic) = &last.arguments
        && let Some(GenericArgument::Type(ok)) = generic.args.first()
    {
        return Returned {
            value: (!is_unit(ok)).then(|| ok.clone()),
            is_fallible: true,
        };
    }
    Returned {
        value: (!is_unit(ty)).then(|| (**ty).clone()),
        is_fallible: false,
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// The `match` arm that runs one transaction.
fn route(
    name: &LitStr,
    method: &syn::Ident,
    arguments: &[Argument],
    is_fallible: bool,
) -> TokenStream2 {
    let positional = arguments
        .iter()
        .filter(|argument| argument.transient.is_none())
        .count();
    let mut index = 0_usize;
    let decoded = arguments.iter().map(|argument| {
        let ident = &argument.ident;
        let ty = &argument.ty;
        let label = ident.to_string();
        match &argument.transient {
            Some(key) => quote! {
                let #ident: #ty = private::transient_argument(stub, #key)?;
            },
            None => {
                let at = index;
                index += 1;
                quote! {
                    let #ident: #ty = private::argument(&args[#at], #label)?;
                }
            }
        }
    });
    let decoded: Vec<_> = decoded.collect();
    let names = arguments.iter().map(|argument| &argument.ident);
    let call = quote! { self.#method(&mut *stub, #(#names),*) };
    let finish = if is_fallible {
        quote! { private::payload(#call) }
    } else {
        quote! { private::payload(::core::result::Result::<_, ::std::string::String>::Ok(#call)) }
    };
    quote! {
        #name => ::core::option::Option::Some((|| {
            private::argument_count(args.len(), #positional)?;
            #(#decoded)*
            #finish
        })()),
    }
}

/// The metadata of one transaction, built when `GetMetadata` is called.
fn description(
    name: &LitStr,
    evaluate: bool,
    arguments: &[Argument],
    returns: &Returned,
) -> TokenStream2 {
    let parameters = arguments
        .iter()
        .filter(|argument| argument.transient.is_none())
        .map(|argument| {
            let label = argument.ident.to_string();
            let ty = &argument.ty;
            quote! {
                ::ccvm_guest_sdk::contract::ParameterMetadata {
                    name: #label,
                    schema: schemas.subschema_for::<#ty>(),
                }
            }
        });
    let returns = match &returns.value {
        Some(ty) => quote! { ::core::option::Option::Some(schemas.subschema_for::<#ty>()) },
        None => quote! { ::core::option::Option::None },
    };
    quote! {
        ::ccvm_guest_sdk::contract::TransactionMetadata {
            name: #name,
            evaluate: #evaluate,
            parameters: ::std::vec![#(#parameters),*],
            returns: #returns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pascal_case;

    #[test]
    fn snake_case_methods_get_fabric_style_transaction_names() {
        assert_eq!(pascal_case("create_asset"), "CreateAsset");
        assert_eq!(pascal_case("read"), "Read");
        assert_eq!(pascal_case("get_all_assets"), "GetAllAssets");
        assert_eq!(pascal_case("r#type"), "Type");
    }
}
