//! Resolution levels of an image: box-filter downsampling and statistics from bounded samples.

pub mod downsample;
pub mod levels;
pub mod stats;
pub mod texels;

pub use downsample::{bins, block_means};
pub use stats::{percentile_limits, Limits};
