//! Point sets as density images: binning with datashader's rule (`bin`) and shading the aggregate grid
//! (`shade`). Sits after `pyramid` in the layer order and imports only `source`, `palette` and `error`.

pub mod bin;
pub mod index;
pub mod shade;
pub mod worker;

pub use bin::{
    aggregate, aggregate_rows, aggregate_sampled, data_bounds, scan_bounds_sampled, Agg, Bounds, Extent, Grid, Skipped,
};
pub use shade::{palette_thresholds, shade, threshold_index, Normalizer, PointScale, Shading};
