//! The procedural demo: a 1,000,000 × 1,000,000 float32 field computed per tile on demand (no file),
//! a sum of plane waves over twenty octaves, so every zoom level shows structure.
//!
//! Because each wave is separable in complex form, the exact mean of any block of pixels has a closed
//! form, so downsampled views of the demo are exact without touching 10¹² pixels.

use std::f64::consts::PI;
use std::path::PathBuf;

use super::{ArraySource, Format, ImageShape, RegionBuf, SourceInfo};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::geom::Rect;

/// Side of the demo image in pixels.
pub const DEMO_SIZE: u64 = 1_000_000;
const WAVES: usize = 40;

#[derive(Debug, Clone, Copy)]
struct Wave {
    amp: f64,
    u: f64,
    v: f64,
    phase: f64,
}

/// The procedural field. Pixel (x, y) holds `Σ a·sin(u·(x+½) + v·(y+½) + φ)` rounded to float32.
pub struct DemoSource {
    info: SourceInfo,
    waves: Vec<Wave>,
}

/// splitmix64: a tiny deterministic generator, so the demo is the same everywhere.
fn splitmix(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[derive(Clone, Copy)]
struct C(f64, f64);
impl C {
    fn cis(a: f64) -> C {
        C(a.cos(), a.sin())
    }
    fn mul(self, o: C) -> C {
        C(self.0 * o.0 - self.1 * o.1, self.0 * o.1 + self.1 * o.0)
    }
    fn scale(self, s: f64) -> C {
        C(self.0 * s, self.1 * s)
    }
}

/// Mean of `e^{i w (k + ½)}` over integer k in `[a, a + n)`.
fn mean_phasor(w: f64, a: u64, n: u64) -> C {
    let n_f = n as f64;
    let half = (w * 0.5).sin();
    let dirichlet = if half.abs() < 1e-12 { 1.0 } else { (w * n_f * 0.5).sin() / (n_f * half) };
    C::cis(w * (a as f64 + 0.5 + (n_f - 1.0) * 0.5)).scale(dirichlet)
}

impl DemoSource {
    pub fn new(width: u64, height: u64) -> DemoSource {
        let mut seed = 20_261_122u64;
        let waves = (0..WAVES)
            .map(|k| {
                let wavelength = 4.0 * 2f64.powf(k as f64 * 0.5);
                let theta = splitmix(&mut seed) * 2.0 * PI;
                let omega = 2.0 * PI / wavelength;
                Wave {
                    amp: wavelength.powf(0.45) * (0.5 + splitmix(&mut seed)),
                    u: omega * theta.cos(),
                    v: omega * theta.sin(),
                    phase: splitmix(&mut seed) * 2.0 * PI,
                }
            })
            .collect();
        let info = SourceInfo::basic(
            PathBuf::from("<demo>"),
            Format::DEMO,
            vec![height, width],
            DType::F32,
            ImageShape { slices: 1, height, width, channels: 1 },
        );
        DemoSource { info, waves }
    }

    /// Field values on the grid `xs × ys` (pixel indices), row by row, in f64.
    fn eval(&self, xs: &[u64], ys: &[u64], mut put: impl FnMut(usize, f64)) {
        let cols: Vec<Vec<C>> =
            self.waves.iter().map(|w| xs.iter().map(|&x| C::cis(w.u * (x as f64 + 0.5))).collect()).collect();
        for (j, &y) in ys.iter().enumerate() {
            let rows: Vec<C> =
                self.waves.iter().map(|w| C::cis(w.v * (y as f64 + 0.5) + w.phase).scale(w.amp)).collect();
            for i in 0..xs.len() {
                let s: f64 = rows.iter().zip(&cols).map(|(r, col)| col[i].mul(*r).1).sum();
                put(j * xs.len() + i, s);
            }
        }
    }
}

impl ArraySource for DemoSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn read_region(&self, slice: u64, rect: Rect, out: &mut RegionBuf) -> Result<()> {
        self.check_request(slice, &rect)?;
        let xs: Vec<u64> = (rect.x0..rect.x1).collect();
        let ys: Vec<u64> = (rect.y0..rect.y1).collect();
        let bytes = out.reset(DType::F32, xs.len(), ys.len(), 1);
        let vals: &mut [f32] = bytemuck::cast_slice_mut(bytes);
        self.eval(&xs, &ys, |i, v| vals[i] = v as f32);
        Ok(())
    }

    fn sample_grid(&self, slice: u64, xs: &[u64], ys: &[u64]) -> Result<Vec<f64>> {
        let im = self.info.image;
        if slice > 0 || xs.iter().any(|&x| x >= im.width) || ys.iter().any(|&y| y >= im.height) {
            return Err(Error::request(&self.info.path, "sample outside the image"));
        }
        let mut v = vec![0.0; xs.len() * ys.len()];
        // Round through f32 like the stored values.
        self.eval(xs, ys, |i, x| v[i] = f64::from(x as f32));
        Ok(v)
    }

    fn exact_block_means(&self, _slice: u64, x_bins: &[(u64, u64)], y_bins: &[(u64, u64)]) -> Option<Result<Vec<f64>>> {
        let (nx, ny) = (x_bins.len(), y_bins.len());
        let mx: Vec<Vec<C>> =
            self.waves.iter().map(|w| x_bins.iter().map(|&(a, b)| mean_phasor(w.u, a, b - a)).collect()).collect();
        let mut out = vec![0.0; nx * ny];
        for j in 0..ny {
            let (a, b) = y_bins[j];
            let my: Vec<C> =
                self.waves.iter().map(|w| mean_phasor(w.v, a, b - a).mul(C::cis(w.phase)).scale(w.amp)).collect();
            for i in 0..nx {
                out[j * nx + i] = my.iter().enumerate().map(|(k, m)| mx[k][i].mul(*m).1).sum();
            }
        }
        Some(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_means_equal_the_mean_of_pixels() {
        let d = DemoSource::new(DEMO_SIZE, DEMO_SIZE);
        let mut b = RegionBuf::default();
        let r = Rect::new(999_000, 123_456, 999_013, 123_467);
        d.read_region(0, r, &mut b).unwrap();
        let px = b.to_f64();
        let mean: f64 = px.iter().sum::<f64>() / px.len() as f64;
        let m = d.exact_block_means(0, &[(r.x0, r.x1)], &[(r.y0, r.y1)]).unwrap().unwrap();
        // Pixels are stored as f32, so compare to f32 rounding of the field's magnitude.
        let scale = px.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        assert!((m[0] - mean).abs() < 1e-6 * scale, "{} vs {}", m[0], mean);
    }
}
