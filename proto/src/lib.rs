//! placeholder while the crate is assembled
#![allow(missing_docs)]
pub mod mesh;
