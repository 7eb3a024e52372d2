//! The architecture of a NASNet-search-space network (AmoebaNet-A and relatives) as data.
//!
//! Owns: [`Genotype`], [`CellSpec`], [`Operation`], [`NetworkSpec`]; their extraction from a
//! module's variable names and inference graph; recognition of known genotypes; JSON.
//! Does not own: drawing (crate `diagrams`) or arithmetic (crates `kernels`, `nasnet-forward`).

mod spec;

pub use spec::*;
