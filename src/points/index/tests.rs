//! Unit tests of the point index.
