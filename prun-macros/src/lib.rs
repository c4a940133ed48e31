//! Procedural macros for prun. Use them through the `prun` crate (`#[prun::test]`); the code
//! they generate names the runtime as `::prun`, so users depend on one crate.

mod test_attr;

use proc_macro::TokenStream;

/// Marks a function as a prun test. See the `prun` crate's documentation for the keys.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    test_attr::expand(args.into(), item.into()).into()
}
