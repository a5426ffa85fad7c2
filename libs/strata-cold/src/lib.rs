//! The cold tier: Strata's public Parquet layout, the object stores it lives
//! in, and the write/verify halves of moving a chunk there.
//!
//! Layout (a public contract, see `docs/cold-tier.md`):
//! `events/project_id=<id>/date=YYYY-MM-DD/part-NNNNN-rRUN.parquet`, ZSTD, schema
//! in [`schema`].

mod cache;
mod checksum;
mod error;
mod footer;
pub mod layout;
mod owner;
mod reader;
mod rewrite;
mod scan;
pub mod schema;
mod store;
mod verify;
mod writer;

pub use cache::{ColdReadCache, Lease, WantedFile};
pub use checksum::IdChecksum;
pub use error::ColdError;
pub use footer::{column_stats, read_column_stats};
pub use layout::ObjectKey;
pub use owner::OWNER_KEY;
pub use reader::ObjectStoreReader;
pub use rewrite::{RewriteInput, Rewritten, holds_user, rewrite};
pub use scan::{FileContent, TypeUsers, file_content};
pub use store::{ColdStore, S3Options};
pub use verify::verify_file;
pub use writer::{Batch, BatchBuilder, BatchStats, FileWriter, WriterOptions, WrittenFile};
