//! Typed errors of the catalog.
//!
//! Rules: a variant for each thing a caller branches on or a user acts on (a bad
//! view name, a view that exists, a query that does not parse, an empty search);
//! the store's errors pass through unchanged ([`Error::Store`]). Messages name
//! the view, volume or query they concern; which command or option to use about
//! it (`--replace`) is the CLI's to say.

use crate::query::QueryError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] lakefs::Error),
    /// A view query that does not parse: says where and what was expected.
    #[error(transparent)]
    BadQuery(#[from] QueryError),
    #[error("invalid view name '{name}': it becomes a directory name under views/, so no '/', not '.' or '..', at most 255 bytes")]
    BadViewName { name: String },
    #[error("view '{name}' already exists in volume '{volume}' (query: {query})")]
    ViewExists { volume: String, name: String, query: String },
    #[error("search: give at least one word to look for")]
    EmptySearch,
    /// A catalog row that does not decode (a damaged or foreign meta.db).
    #[error("catalog: bad content id for {path}")]
    BadRow { path: String },
}

/// Layers that speak the store's error (the volume behind FUSE hooks) carry a
/// catalog error as the store's: its own errors unchanged, the rest by message.
impl From<Error> for lakefs::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => e,
            other => lakefs::Error::Invalid(other.to_string()),
        }
    }
}
