//! vastview's one integration-test binary: command-line behaviour and GPU pixels checked against
//! numpy and matplotlib (tests/oracle.py writes the inputs and the expected values).

mod common;

mod cli;
mod colormaps;
mod desktop;
mod fits;
mod formats;
mod fuzz;
mod hardening_cache;
mod hardening_input;
mod hardening_output;
mod hardening_window;
mod hdf5;
mod library;
mod malformed;
mod points;
mod points_index;
mod pyramid;
mod render;
mod tiff;
mod window;
mod window_composite;
mod zarr;
