// Channel composite: one full-area triangle; each fragment adds the colours of the channel layers (each layer a
// channel's tiles drawn through its own palette and limits by tile.wgsl), saturating at 1, as
// `palette::composite::add_onto` adds them. Pixels no layer covers are discarded (the backdrop shows).
// Uniforms are mirrored by `GpuCompositeGlobals` in src/render/gpu_types.rs.

struct Globals {
    // The data area's origin in framebuffer pixels (layer texel = fragment − origin).
    origin: vec2<f32>,
    // Layers in `layers`.
    count: u32,
    // Bit i set: layer i is added.
    mask: u32,
};

@group(0) @binding(0) var<uniform> g: Globals;
@group(0) @binding(1) var layers: texture_2d_array<f32>;

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    var corners = array<vec2<f32>, 3>(vec2(-1.0, -1.0), vec2(3.0, -1.0), vec2(-1.0, 3.0));
    return vec4(corners[vi], 0.0, 1.0);
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let dims = vec2<i32>(textureDimensions(layers));
    let t = vec2<i32>(floor(pos.xy - g.origin));
    if t.x < 0 || t.y < 0 || t.x >= dims.x || t.y >= dims.y {
        discard;
    }
    var sum = vec4(0.0);
    for (var i = 0u; i < g.count; i++) {
        if (g.mask & (1u << i)) != 0u {
            sum += textureLoad(layers, t, i32(i), 0);
        }
    }
    if sum.a <= 0.0 {
        discard;
    }
    return min(sum, vec4(1.0));
}
