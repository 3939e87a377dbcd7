//! Point sets as density images: binning with datashader's rule (`bin`) and shading the aggregate grid
//! (`shade`). Sits after `pyramid` in the layer order and imports only `source`, `palette` and `error`.

pub mod bin;
pub mod index;
pub mod shade;

pub use bin::{aggregate, aggregate_rows, data_bounds, Agg, Bounds, Extent, Grid, Skipped};
pub use shade::{shade, Normalizer, PointScale, Shading};
