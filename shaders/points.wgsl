// Point density pipeline: one full-viewport triangle pair; each fragment fetches its aggregate grid pixel
// (R32Float, NaN = empty; textureLoad, no filtering), picks the palette entry through 256 thresholds computed on
// the CPU from the grid for the chosen scale (linear, log, eqhist: the same normalization as the PNG), applies
// alpha, then composites the background with datashader's `over`, quantized like the PNG. With a marker
// radius (deep zoom: few points in view), an empty pixel shows its nearest non-empty neighbour, so single
// points are drawn as discs rather than lone pixels.
// Uniforms are mirrored by `GpuPointGlobals` in src/render/gpu_types.rs.

struct Globals {
    // Grid column = floor(px·x + y), row (0 = lowest y) = floor(py·z + w), in framebuffer pixels.
    grid_map: vec4<f32>,
    background: vec4<f32>,
    alpha: f32,
    // Row of `thresholds`: 0 linear, 1 log, 2 eqhist (PointScale::ALL order).
    scale_row: u32,
    has_grid: u32,
    // Marker radius in grid pixels (0: off): an empty pixel takes the value of the nearest non-empty pixel
    // within this distance (squared distance ≤ radius² + radius, a round disc; ties: the larger value).
    radius: u32,
    _pad1: vec4<u32>,
};

@group(0) @binding(0) var<uniform> g: Globals;
@group(0) @binding(1) var grid: texture_2d<f32>;
// 256 × 3: the smallest value drawn with palette entry k (or a later one), per scale.
@group(0) @binding(2) var thresholds: texture_2d<f32>;
@group(0) @binding(3) var lut: texture_2d<f32>;

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    var corners = array<vec2<f32>, 6>(
        vec2(-1.0, -1.0), vec2(1.0, -1.0), vec2(-1.0, 1.0),
        vec2(-1.0, 1.0), vec2(1.0, -1.0), vec2(1.0, 1.0),
    );
    return vec4(corners[vi], 0.0, 1.0);
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// The last palette entry k with thresholds[k] ≤ v (thresholds are non-decreasing).
fn palette_entry(v: f32) -> i32 {
    var lo = 0;
    var hi = 256;
    let row = i32(g.scale_row);
    for (var i = 0; i < 9; i++) {
        if lo >= hi {
            break;
        }
        let mid = (lo + hi) / 2;
        if textureLoad(thresholds, vec2(mid, row), 0).r <= v {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return max(lo - 1, 0);
}

// floor(255·x)/255, clamped: the PNG's 8-bit quantization after compositing.
fn q(x: f32) -> f32 {
    return floor(clamp(x * 255.0, 0.0, 255.0)) / 255.0;
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    var src = vec4(0.0);
    if g.has_grid != 0u {
        let dims = vec2<i32>(textureDimensions(grid));
        let c = i32(floor(pos.x * g.grid_map.x + g.grid_map.y));
        let r = i32(floor(pos.y * g.grid_map.z + g.grid_map.w));
        if c >= 0 && r >= 0 && c < dims.x && r < dims.y {
            var v = textureLoad(grid, vec2(c, r), 0).r;
            let rad = i32(g.radius);
            if is_nan(v) && rad > 0 {
                var best = rad * rad + rad + 1;
                for (var dy = -rad; dy <= rad; dy++) {
                    for (var dx = -rad; dx <= rad; dx++) {
                        let d2 = dx * dx + dy * dy;
                        let p = vec2(c + dx, r + dy);
                        if d2 > rad * rad + rad || d2 > best || p.x < 0 || p.y < 0 || p.x >= dims.x || p.y >= dims.y {
                            continue;
                        }
                        let w = textureLoad(grid, p, 0).r;
                        if !is_nan(w) && (d2 < best || w > v || is_nan(v)) {
                            best = d2;
                            v = w;
                        }
                    }
                }
            }
            if !is_nan(v) {
                let rgb = textureLoad(lut, vec2(palette_entry(v), 0), 0).rgb;
                src = vec4(rgb, g.alpha);
            }
        }
    }
    let d = g.background;
    if d.a <= 0.0 {
        return src;
    }
    let f = 1.0 - src.a;
    let a = src.a + d.a * f;
    if a <= 0.0 {
        return vec4(0.0);
    }
    let ch = (src.rgb * src.a + d.rgb * d.a * f) / a;
    return vec4(q(ch.r), q(ch.g), q(ch.b), q(a));
}
