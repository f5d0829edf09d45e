// Dequantization of GGUF blocks from a weight buffer `W` (declared by the including
// kernel as `array<u32>`). Rows were repacked on upload to start on 4-byte boundaries
// (each row padded to a multiple of 4 bytes), so every f16 scale, which sits at an even
// offset of its block, lies inside one 32-bit word. Type codes are ggml's.
const T_F32: u32 = 0u;
const T_F16: u32 = 1u;
const T_Q4_0: u32 = 2u;
const T_Q4_1: u32 = 3u;
const T_Q5_0: u32 = 6u;
const T_Q5_1: u32 = 7u;
const T_Q8_0: u32 = 8u;
const T_Q2_K: u32 = 10u;
const T_Q3_K: u32 = 11u;
const T_Q4_K: u32 = 12u;
const T_Q5_K: u32 = 13u;
const T_Q6_K: u32 = 14u;
const T_BF16: u32 = 30u;

fn b8(o: u32) -> u32 {
    return (W[o >> 2u] >> ((o & 3u) * 8u)) & 0xffu;
}

fn s8(o: u32) -> i32 {
    let v = i32(b8(o));
    return select(v, v - 256, v > 127);
}

// The 16-bit value at even byte offset `o`.
fn u16at(o: u32) -> u32 {
    let w = W[o >> 2u];
    return select(w & 0xffffu, w >> 16u, (o & 2u) != 0u);
}

fn h16(o: u32) -> f32 {
    return unpack2x16float(u16at(o)).x;
}

fn u32at(o: u32) -> u32 {
    return b8(o) | (b8(o + 1u) << 8u) | (b8(o + 2u) << 16u) | (b8(o + 3u) << 24u);
}

// ggml's get_scale_min_k4: 6-bit scale and min `j` (0..7) of a Q4_K/Q5_K super-block
// whose 12 scale bytes start at `q`.
fn scale_min_k4(j: u32, q: u32) -> vec2<f32> {
    if (j < 4u) {
        return vec2<f32>(f32(b8(q + j) & 63u), f32(b8(q + j + 4u) & 63u));
    }
    let sc = (b8(q + j + 4u) & 0xfu) | ((b8(q + j - 4u) >> 6u) << 4u);
    let mn = (b8(q + j + 4u) >> 4u) | ((b8(q + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

// Elements [32 sb, 32 sb + 32) of the row of `cols` values of type `ty` at byte `row`.
// Float rows may end inside the sub-block: missing elements are 0.
fn dq32(ty: u32, row: u32, sb: u32, cols: u32, w: ptr<function, array<f32, 32>>) {
    switch ty {
        case 0u: { // F32
            for (var l = 0u; l < 32u; l++) {
                let i = sb * 32u + l;
                (*w)[l] = select(0.0, bitcast<f32>(W[(row >> 2u) + i]), i < cols);
            }
        }
        case 1u: { // F16
            for (var l = 0u; l < 32u; l++) {
                let i = sb * 32u + l;
                (*w)[l] = select(0.0, h16(row + 2u * i), i < cols);
            }
        }
        case 30u: { // BF16
            for (var l = 0u; l < 32u; l++) {
                let i = sb * 32u + l;
                (*w)[l] = select(0.0, bitcast<f32>(u16at(row + 2u * i) << 16u), i < cols);
            }
        }
        case 2u: { // Q4_0
            let b = row + sb * 18u;
            let d = h16(b);
            for (var l = 0u; l < 16u; l++) {
                let q = b8(b + 2u + l);
                (*w)[l] = f32(i32(q & 0xfu) - 8) * d;
                (*w)[l + 16u] = f32(i32(q >> 4u) - 8) * d;
            }
        }
        case 3u: { // Q4_1
            let b = row + sb * 20u;
            let d = h16(b);
            let m = h16(b + 2u);
            for (var l = 0u; l < 16u; l++) {
                let q = b8(b + 4u + l);
                (*w)[l] = f32(q & 0xfu) * d + m;
                (*w)[l + 16u] = f32(q >> 4u) * d + m;
            }
        }
        case 6u: { // Q5_0
            let b = row + sb * 22u;
            let d = h16(b);
            let qh = u32at(b + 2u);
            for (var l = 0u; l < 16u; l++) {
                let q = b8(b + 6u + l);
                let h0 = ((qh >> l) << 4u) & 0x10u;
                let h1 = (qh >> (l + 12u)) & 0x10u;
                (*w)[l] = f32(i32((q & 0xfu) | h0) - 16) * d;
                (*w)[l + 16u] = f32(i32((q >> 4u) | h1) - 16) * d;
            }
        }
        case 7u: { // Q5_1
            let b = row + sb * 24u;
            let d = h16(b);
            let m = h16(b + 2u);
            let qh = u32at(b + 4u);
            for (var l = 0u; l < 16u; l++) {
                let q = b8(b + 8u + l);
                let h0 = ((qh >> l) << 4u) & 0x10u;
                let h1 = (qh >> (l + 12u)) & 0x10u;
                (*w)[l] = f32((q & 0xfu) | h0) * d + m;
                (*w)[l + 16u] = f32((q >> 4u) | h1) * d + m;
            }
        }
        case 8u: { // Q8_0
            let b = row + sb * 34u;
            let d = h16(b);
            for (var l = 0u; l < 32u; l++) {
                (*w)[l] = f32(s8(b + 2u + l)) * d;
            }
        }
        case 10u: { // Q2_K
            let b = row + (sb >> 3u) * 84u;
            let j = sb & 7u;
            let n = j >> 2u;
            let k = j & 3u;
            let q = b + 16u + 32u * n;
            let d = h16(b + 80u);
            let dmin = h16(b + 82u);
            for (var l = 0u; l < 32u; l++) {
                let s = b8(b + 8u * n + 2u * k + select(0u, 1u, l >= 16u));
                (*w)[l] = d * f32(s & 0xfu) * f32((b8(q + l) >> (2u * k)) & 3u) - dmin * f32(s >> 4u);
            }
        }
        case 11u: { // Q3_K
            let b = row + (sb >> 3u) * 110u;
            let j = sb & 7u;
            let n = j >> 2u;
            let k = j & 3u;
            let q = b + 32u + 32u * n;
            let s = b + 96u;
            let d = h16(b + 108u);
            for (var l = 0u; l < 32u; l++) {
                let i = 8u * n + 2u * k + select(0u, 1u, l >= 16u);
                let g = i >> 2u;
                let bi = i & 3u;
                let lo = (b8(s + bi + 4u * (g & 1u)) >> (4u * (g >> 1u))) & 0xfu;
                let hi = (b8(s + 8u + bi) >> (2u * g)) & 3u;
                let dl = d * f32(i32(lo | (hi << 4u)) - 32);
                let hm = (b8(b + l) & (1u << j)) != 0u;
                let v = i32((b8(q + l) >> (2u * k)) & 3u) - select(4, 0, hm);
                (*w)[l] = dl * f32(v);
            }
        }
        case 12u: { // Q4_K
            let b = row + (sb >> 3u) * 144u;
            let j = sb & 7u;
            let d = h16(b);
            let dmin = h16(b + 2u);
            let sm = scale_min_k4(j, b + 4u);
            let q = b + 16u + 32u * (j >> 1u);
            let d1 = d * sm.x;
            let m1 = dmin * sm.y;
            let sh = select(0u, 4u, (j & 1u) != 0u);
            for (var l = 0u; l < 32u; l++) {
                (*w)[l] = d1 * f32((b8(q + l) >> sh) & 0xfu) - m1;
            }
        }
        case 13u: { // Q5_K
            let b = row + (sb >> 3u) * 176u;
            let j = sb & 7u;
            let d = h16(b);
            let dmin = h16(b + 2u);
            let sm = scale_min_k4(j, b + 4u);
            let qh = b + 16u;
            let q = b + 48u + 32u * (j >> 1u);
            let d1 = d * sm.x;
            let m1 = dmin * sm.y;
            let sh = select(0u, 4u, (j & 1u) != 0u);
            for (var l = 0u; l < 32u; l++) {
                let v = ((b8(q + l) >> sh) & 0xfu) + ((b8(qh + l) >> j) & 1u) * 16u;
                (*w)[l] = d1 * f32(v) - m1;
            }
        }
        case 14u: { // Q6_K
            let b = row + (sb >> 3u) * 210u;
            let j = sb & 7u;
            let n = j >> 2u;
            let k = j & 3u;
            let ql = b + 64u * n + select(0u, 32u, (k & 1u) != 0u);
            let qh = b + 128u + 32u * n;
            let sc = b + 192u + 8u * n;
            let d = h16(b + 208u);
            let sh = select(0u, 4u, (k & 2u) != 0u);
            for (var l = 0u; l < 32u; l++) {
                let lo = (b8(ql + l) >> sh) & 0xfu;
                let hi = (b8(qh + l) >> (2u * k)) & 3u;
                (*w)[l] = d * f32(s8(sc + (l >> 4u) + 2u * k)) * f32(i32(lo | (hi << 4u)) - 32);
            }
        }
        default: {
            for (var l = 0u; l < 32u; l++) {
                (*w)[l] = 0.0;
            }
        }
    }
}
