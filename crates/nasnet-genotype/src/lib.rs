//! The architecture of a NASNet-search-space network (AmoebaNet-A and relatives) as data.
//!
//! Owns: [`Genotype`], [`CellSpec`], [`Operation`], [`NetworkSpec`], [`CellLayout`]; their
//! extraction from a module's checkpoint variable names and inference graph ([`extract`]), or
//! from variables plus a known genotype ([`from_variables`]); recognition of the published
//! genotypes ([`recognize`]); JSON ([`NetworkSpec::to_json`]); the one validation every
//! description passes ([`NetworkSpec::validate`], caps in [`limits`]).
//!
//! Does not own: reading files (crates `hub-module`, `tensor-bundle` hand over the decoded
//! MetaGraphDef and the variable names/shapes), drawing (crate `diagrams`) or arithmetic
//! (crates `kernels`, `nasnet-forward`).

pub mod conventions;
mod error;
mod extract;
pub mod graph;
mod known;
pub mod layout;
mod opnames;
mod spec;
mod validate;
pub mod variables;

pub use conventions::{conventions, Conventions, Family, ReductionCells};
pub use error::GenotypeError;
pub use extract::{extract, from_variables, Assumptions, Extraction};
pub use known::{is_one_cell_type, known_genotype, known_names, recognize};
pub use spec::*;
pub use validate::limits;
