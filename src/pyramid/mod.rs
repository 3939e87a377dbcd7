//! Resolution levels of an image: box-filter (mean or max) downsampling, the persistent pyramid file
//! built in one streaming pass with per-tile statistics, strided previews, and statistics from samples.

pub mod build;
pub mod downsample;
mod kernels;
pub mod levels;
pub mod persist;
pub mod stats;
pub mod store;
pub mod texels;
pub mod tilestats;

pub use build::Progress;
pub use downsample::{bins, block_means, block_reduce, centre_rows, preview_rows};
pub use stats::{percentile_limits, sample_percentiles, Limits};
pub use store::{Method, Store};

/// Side of a tile, in pixels of its level.
pub const TILE: u64 = 256;
