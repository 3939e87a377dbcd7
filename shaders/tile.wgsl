// Tile pipeline: instanced tile quads; each fragment fetches its raw texel (textureLoad, no filtering),
// then value → (v − lo)/(hi − lo) → scale → gamma → 256-entry palette → RGBA.
// Uniforms are mirrored by `GpuGlobals` / `GpuTileInstance` in src/render/gpu_types.rs.

struct Globals {
    target_size: vec2<f32>,
    // 1 / (hi − lo), or 0 when hi == lo.
    inv_range: f32,
    gamma: f32,
    nan_color: vec4<f32>,
    // 0 linear, 1 log, 2 sqrt, 3 asinh (palette::Scale::code).
    scale_mode: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
};

@group(0) @binding(0) var<uniform> g: Globals;
@group(0) @binding(1) var lut: texture_2d<f32>;

// One binding per texel kind; each pipeline's layout has just its own.
@group(1) @binding(0) var tile_float: texture_2d<f32>;
@group(1) @binding(1) var tile_uint: texture_2d<u32>;
@group(1) @binding(2) var tile_sint: texture_2d<i32>;
@group(1) @binding(3) var tile_rgba: texture_2d<u32>;

struct Instance {
    // Quad in target pixels: x, y, width, height.
    @location(0) rect: vec4<f32>,
    // Texel = floor(frag.x · m.x + m.y, frag.y · m.z + m.w).
    @location(1) texel_map: vec4<f32>,
    // x: offset − lo for this tile (64-bit data travels as offset + f32 residual).
    @location(2) shift: vec4<f32>,
};

struct VOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) @interpolate(flat) texel_map: vec4<f32>,
    @location(1) @interpolate(flat) shift: f32,
};

@vertex
fn vs_main(@builtin(vertex_index) vi: u32, inst: Instance) -> VOut {
    var corners = array<vec2<f32>, 6>(
        vec2(0.0, 0.0), vec2(1.0, 0.0), vec2(0.0, 1.0),
        vec2(0.0, 1.0), vec2(1.0, 0.0), vec2(1.0, 1.0),
    );
    let px = inst.rect.xy + corners[vi] * inst.rect.zw;
    let ndc = vec2(px.x / g.target_size.x * 2.0 - 1.0, 1.0 - px.y / g.target_size.y * 2.0);
    var out: VOut;
    out.pos = vec4(ndc, 0.0, 1.0);
    out.texel_map = inst.texel_map;
    out.shift = inst.shift.x;
    return out;
}

fn texel(pos: vec2<f32>, m: vec4<f32>, dims: vec2<u32>) -> vec2<i32> {
    let t = floor(vec2(pos.x * m.x + m.y, pos.y * m.z + m.w));
    return clamp(vec2<i32>(t), vec2(0), vec2<i32>(dims) - vec2(1));
}

fn is_nan(v: f32) -> bool {
    // Bit test: compilers may fold `v != v` away under fast-math.
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn colorize(v: f32, shift: f32) -> vec4<f32> {
    if is_nan(v) {
        return g.nan_color;
    }
    var t = 0.0;
    if g.inv_range != 0.0 {
        t = clamp((v + shift) * g.inv_range, 0.0, 1.0);
    }
    switch g.scale_mode {
        case 1u: { t = log(1000.0 * t + 1.0) / log(1001.0); }
        case 2u: { t = sqrt(t); }
        case 3u: { t = asinh(t * 10.0) / asinh(10.0); }
        default: {}
    }
    if g.gamma != 1.0 && t > 0.0 {
        t = pow(t, g.gamma);
    }
    let i = clamp(i32(floor(t * 256.0)), 0, 255);
    return textureLoad(lut, vec2(i, 0), 0);
}

@fragment
fn fs_float(in: VOut) -> @location(0) vec4<f32> {
    let v = textureLoad(tile_float, texel(in.pos.xy, in.texel_map, textureDimensions(tile_float)), 0).r;
    return colorize(v, in.shift);
}

@fragment
fn fs_uint(in: VOut) -> @location(0) vec4<f32> {
    let v = textureLoad(tile_uint, texel(in.pos.xy, in.texel_map, textureDimensions(tile_uint)), 0).r;
    return colorize(f32(v), in.shift);
}

@fragment
fn fs_sint(in: VOut) -> @location(0) vec4<f32> {
    let v = textureLoad(tile_sint, texel(in.pos.xy, in.texel_map, textureDimensions(tile_sint)), 0).r;
    return colorize(f32(v), in.shift);
}

@fragment
fn fs_rgba(in: VOut) -> @location(0) vec4<f32> {
    let c = textureLoad(tile_rgba, texel(in.pos.xy, in.texel_map, textureDimensions(tile_rgba)), 0);
    return vec4<f32>(c) / 255.0;
}
