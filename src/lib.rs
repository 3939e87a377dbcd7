//! vastview: a GPU viewer for arrays larger than memory.
//!
//! Data flows one way — `source → pyramid → points → cache → render → headless | app` — and each
//! module imports only the layers to its left. Sources memory-map files read-only and read just the
//! bytes a region needs; `pyramid` shrinks regions by block means and estimates statistics from bounded
//! samples; `points` bins point sets into density grids and shades them; `render` uploads tiles in their
//! own dtype width and colors them in a fragment shader; `headless` (and `headless_points`) is the API
//! behind the command line.

#[cfg(feature = "gui")]
pub mod app;
pub mod cache;
pub mod cli;
pub mod desktop;
pub mod diskcache;
pub mod dtype;
pub mod error;
pub mod geom;
pub mod headless;
pub mod headless_points;
pub mod info;
pub mod numfmt;
pub mod output;
pub mod palette;
pub mod points;
pub mod pyramid;
pub mod render;
pub mod source;
#[cfg(test)]
mod test_init;
pub mod view;

pub use error::{Error, Result};
