//! `#[derive(ModuleTree)]`: a struct of layers walks itself under PyTorch's `state_dict` paths.
//!
//! Use it through `ember-layers` (or the umbrella crate's `ember::prelude`), which re-exports it
//! next to the trait of the same name; the generated code names `::ember_layers`, or
//! `::ember::layers` in a crate that depends only on `ember`. Every field is a child module under its own name
//! (layers, `Param`s, `Buffer`s, `Vec`s of them numbered from 0, `Option`s of them present or
//! not) unless told otherwise:
//!
//! - `#[module(skip)]` on a field that is not part of the tree (a configuration, a name);
//! - `#[module(rename = "0")]` on a field whose PyTorch name is not a Rust identifier, as
//!   torchvision's `downsample.0` / `downsample.1`;
//! - `#[module(kind = Linear)]` on the struct reports it as that `LayerKind` instead of
//!   `LayerKind::Module("TypeName")` (what ember's own layers use);
//! - `#[module(transparent)]` on the one field whose tree is the struct's own, under the same
//!   path (a wrapper that adds no layer: computed padding, a boxed network); the struct then
//!   reports no entry of its own, and its other fields must be skipped.
//!
//! ```
//! use ember_layers::{BatchNorm, Conv2d, ModuleTree};
//!
//! #[derive(ModuleTree)]
//! struct Downsample {
//!     #[module(rename = "0")]
//!     conv: Conv2d,
//!     #[module(rename = "1")]
//!     bn: BatchNorm,
//! }
//! ```

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::ext::IdentExt;
use syn::{parse_macro_input, Attribute, Data, DeriveInput, Fields, Ident, LitStr, Member};

/// Derives `ember_layers::ModuleTree` for a struct; see the crate docs for the attributes.
#[proc_macro_derive(ModuleTree, attributes(module))]
pub fn derive_module_tree(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input).unwrap_or_else(|err| err.to_compile_error()).into()
}

/// What `#[module(...)]` says about a field.
#[derive(Default)]
struct FieldAttrs {
    skip: bool,
    rename: Option<String>,
    transparent: bool,
}

fn field_attrs(attrs: &[Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("skip") {
                out.skip = true;
                Ok(())
            } else if meta.path.is_ident("transparent") {
                out.transparent = true;
                Ok(())
            } else if meta.path.is_ident("rename") {
                let name: LitStr = meta.value()?.parse()?;
                if name.value().is_empty() || name.value().contains('.') {
                    return Err(syn::Error::new(name.span(), "a path segment is not empty and has no `.`"));
                }
                out.rename = Some(name.value());
                Ok(())
            } else {
                Err(meta.error("expected `skip`, `transparent` or `rename = \"...\"`"))
            }
        })?;
    }
    Ok(out)
}

/// The struct's `#[module(kind = ...)]`, if any.
fn struct_kind(attrs: &[Attribute]) -> syn::Result<Option<Ident>> {
    let mut kind = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("kind") {
                kind = Some(meta.value()?.parse::<Ident>()?);
                Ok(())
            } else {
                Err(meta.error("expected `kind = <LayerKind variant>`"))
            }
        })?;
    }
    Ok(kind)
}

/// The path of ember-layers as the deriving crate can name it: `::ember_layers` for a crate that
/// depends on it (or is it), `::ember::layers` for one that depends only on the umbrella crate
/// `ember` (read from the deriving crate's Cargo.toml, as serde and others do).
fn layers_path() -> TokenStream2 {
    use proc_macro_crate::{crate_name, FoundCrate};
    let named = |name: &str| {
        let ident = syn::Ident::new(name, proc_macro2::Span::call_site());
        quote!(::#ident)
    };
    match (crate_name("ember-layers"), crate_name("ember")) {
        (Ok(FoundCrate::Name(name)), _) => named(&name),
        (Ok(FoundCrate::Itself), _) => quote!(::ember_layers),
        (Err(_), Ok(FoundCrate::Name(name))) => {
            let root = named(&name);
            quote!(#root::layers)
        }
        (Err(_), Ok(FoundCrate::Itself)) => quote!(crate::layers),
        // Neither found (a build outside cargo): the direct name, whose error is the clearest.
        (Err(_), Err(_)) => quote!(::ember_layers),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    let layers = layers_path();
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(&input.ident, "ModuleTree can only be derived for structs"));
    };
    let name = &input.ident;
    let kind = match struct_kind(&input.attrs)? {
        Some(variant) => quote!(#layers::LayerKind::#variant),
        None => {
            let type_name = name.unraw().to_string();
            quote!(#layers::LayerKind::Module(#type_name))
        }
    };

    let mut children = Vec::new();
    let mut child_types = Vec::new();
    let mut transparent = None;
    let fields: Vec<_> = match &data.fields {
        Fields::Named(named) => named.named.iter().collect(),
        Fields::Unnamed(unnamed) => unnamed.unnamed.iter().collect(),
        Fields::Unit => Vec::new(),
    };
    for (index, field) in fields.into_iter().enumerate() {
        let attrs = field_attrs(&field.attrs)?;
        if attrs.skip {
            if attrs.rename.is_some() || attrs.transparent {
                return Err(syn::Error::new_spanned(field, "a skipped field cannot be renamed or transparent"));
            }
            continue;
        }
        let (member, default_name) = match &field.ident {
            Some(ident) => (Member::Named(ident.clone()), ident.unraw().to_string()),
            None => (Member::Unnamed(index.into()), index.to_string()),
        };
        if attrs.transparent {
            if attrs.rename.is_some() || transparent.is_some() {
                return Err(syn::Error::new_spanned(field, "one transparent field, not renamed"));
            }
            transparent = Some((member, &field.ty));
            continue;
        }
        children.push((member, attrs.rename.unwrap_or(default_name)));
        child_types.push(&field.ty);
    }

    if let Some((member, ty)) = transparent {
        if !children.is_empty() || struct_kind(&input.attrs)?.is_some() {
            return Err(syn::Error::new_spanned(
                &input.ident,
                "a struct with a transparent field has no kind and no other (unskipped) fields",
            ));
        }
        return Ok(transparent_impl(input, &layers, &member, ty));
    }

    // Bounds only for generic structs: naming a private field type in a public impl's bounds
    // would trip `private_bounds`, and concrete types are checked anyway.
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause.cloned();
    if !input.generics.params.is_empty() {
        let clause = where_clause.get_or_insert_with(|| syn::parse_quote!(where));
        for ty in &child_types {
            clause.predicates.push(syn::parse_quote!(#ty: #layers::ModuleTree));
        }
        // The struct hands itself out as `dyn Any` in `visit_mut`.
        clause.predicates.push(syn::parse_quote!(Self: 'static));
    }

    let visits = children.iter().map(|(member, segment)| quote!(path.child(#segment, &self.#member, f);));
    let visits_mut = children.iter().map(|(member, segment)| quote!(path.child_mut(#segment, &mut self.#member, f);));
    Ok(quote! {
        impl #impl_generics #layers::ModuleTree for #name #ty_generics #where_clause {
            fn visit_at<'ember_a>(
                &'ember_a self,
                path: &mut #layers::ModulePath,
                f: &mut dyn FnMut(&str, #layers::Entry<'ember_a>),
            ) {
                f(path.as_str(), #layers::Entry::Layer(#kind));
                #(#visits)*
            }

            fn visit_mut_at(
                &mut self,
                path: &mut #layers::ModulePath,
                f: &mut dyn FnMut(&str, #layers::EntryMut<'_>),
            ) {
                f(
                    path.as_str(),
                    #layers::EntryMut::Layer(#kind, Some(&mut *self as &mut dyn ::core::any::Any)),
                );
                #(#visits_mut)*
            }
        }
    })
}

/// The tree of the transparent field `member` (of type `ty`) as the struct's own.
fn transparent_impl(input: &DeriveInput, layers: &TokenStream2, member: &Member, ty: &syn::Type) -> TokenStream2 {
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause.cloned();
    if !input.generics.params.is_empty() {
        let clause = where_clause.get_or_insert_with(|| syn::parse_quote!(where));
        clause.predicates.push(syn::parse_quote!(#ty: #layers::ModuleTree));
    }
    quote! {
        impl #impl_generics #layers::ModuleTree for #name #ty_generics #where_clause {
            fn visit_at<'ember_a>(
                &'ember_a self,
                path: &mut #layers::ModulePath,
                f: &mut dyn FnMut(&str, #layers::Entry<'ember_a>),
            ) {
                #layers::ModuleTree::visit_at(&self.#member, path, f);
            }

            fn visit_mut_at(
                &mut self,
                path: &mut #layers::ModulePath,
                f: &mut dyn FnMut(&str, #layers::EntryMut<'_>),
            ) {
                #layers::ModuleTree::visit_mut_at(&mut self.#member, path, f);
            }
        }
    }
}
