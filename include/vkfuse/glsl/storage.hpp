// vkfuse/glsl/storage.hpp — buffers stored as f16, bf16, q8_0 or q4_0: how a shader declares, reads and writes them.
//
// Arithmetic is f32. A buffer in another storage is read through functions printed here, one set per buffer:
// `vkf_<name>(e)` returns element e, `vkf_<name>_4(q)` elements 4q .. 4q+3, and an f16 state gets
// `vkf_store_<name>(e, v)`. Every format has two ways in, chosen when the pipeline is built:
//
//  * native, where the device has 16-bit (and, for the blocks, 8-bit) storage access: the buffer is an array of
//    float16_t / uint16_t or of GGUF-shaped block structs, and the hardware converts;
//  * 32-bit words, on any Vulkan 1.1 device (and in a program that packs its buffers into one binding): the buffer is
//    an array of uint, and the functions take the bytes apart — unpackHalf2x16 for f16, a shift for bf16, byte and
//    nibble extraction for the blocks (a block is 34 or 18 bytes, so half of them start mid-word).
//
// The runtime defines VKFUSE_STORAGE_16BIT and VKFUSE_STORAGE_8BIT in the preamble when it enabled those features
// (program_options::native_storage turns them off, to test the word path on any device). Both ways read the same
// bits and convert exactly, so results do not depend on the way. Writes of f16 round to nearest even by integer
// arithmetic (vkf_f16_bits), as vkfuse/formats/half.hpp does, not by the device's conversion, whose rounding Vulkan
// leaves to the implementation; the word way writes half a word with two atomics on disjoint bits, which commute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/text.hpp"
#include "../plan/records.hpp"
#include "access.hpp"

namespace vkfuse::glsl {

// True where a matvec reads buffer b eight values per 16-byte load (vkf_<name>_8): bf16, in a binding of its own.
// (f32 and f16 already load 16 and 8 bytes per four values; the blocks are bound by their decoding.)
template <std::size_t Cap>
constexpr bool wide_loads(const plan::program_plan<Cap>& p, int b, bool packed) {
    return !packed && p.buffers[b].dtype == dtype_code::bf16;
}

// What a shader's non-f32 buffers need.
struct storage_needs {
    bool any = false;         // some buffer is not f32 or u32
    bool sixteen = false;     // native reads need 16-bit storage (f16, and the blocks' f16 scales)
    bool eight = false;       // native reads need 8-bit storage (the blocks' quants)
    bool f16_writes = false;  // an f16 state is written: vkf_f16_bits
};

template <std::size_t Cap>
constexpr storage_needs needs_of(const plan::program_plan<Cap>& p, const plan::shader_record& sh) {
    storage_needs n;
    for (int i = 0; i < sh.binding_count; ++i) {
        const dtype_code d = p.buffers[sh.bindings[i].buffer].dtype;
        if (plain_storage(p, sh.bindings[i].buffer)) continue;
        n.any = true;
        n.sixteen = n.sixteen || d == dtype_code::f16 || is_block_format(d);
        n.eight = n.eight || is_block_format(d);
        n.f16_writes = n.f16_writes || (d == dtype_code::f16 && sh.bindings[i].writes());
    }
    return n;
}

// The extensions the native ways need, under the symbols the runtime defines.
template <class T>
constexpr void emit_storage_extensions(T& t, const storage_needs& n) {
    if (n.sixteen)
        t << "#ifdef VKFUSE_STORAGE_16BIT\n"
             "#extension GL_EXT_shader_16bit_storage : require\n"
             "#endif\n";
    if (n.eight)
        t << "#if defined(VKFUSE_STORAGE_16BIT) && defined(VKFUSE_STORAGE_8BIT)\n"
             "#extension GL_EXT_shader_8bit_storage : require\n"
             "#endif\n";
}

// The condition under which buffer format d is read natively.
constexpr std::string_view native_condition(dtype_code d) {
    return is_block_format(d) ? "#if defined(VKFUSE_STORAGE_16BIT) && defined(VKFUSE_STORAGE_8BIT)\n"
                              : "#ifdef VKFUSE_STORAGE_16BIT\n";
}

// The declaration of binding `index`, a buffer stored as f16, bf16, q8_0 or q4_0 (not packed).
// `index`: its binding number; `piece`: which piece of a split weight it is (-1: the whole buffer).
template <class T, std::size_t Cap, class Comment>
constexpr void emit_storage_binding(T& t, const plan::program_plan<Cap>& p, int index, const plan::binding& bd,
                                    Comment comment, int piece = -1) {
    const plan::buffer_slot& s = p.buffers[bd.buffer];
    const std::string_view access = bd.writes() ? "coherent" : "readonly restrict";
    auto block = [&](std::string_view suffix, std::string_view element, std::string_view view) {
        t << "layout(set = 0, binding = " << index << ", std430) " << access << " buffer Binding" << index << suffix
          << " { " << element << ' ';
        buffer_name(t, p, bd.buffer, piece);
        t << view << "[]; };";
    };
    auto declare = [&](std::string_view element, std::string_view vec4_element) {
        if (bd.vec4 && !vec4_element.empty()) {
            block("v4", vec4_element, "_v4");
            t << '\n';
        }
        block("", element, "");
        comment();  // the rest of the line
    };
    // the words, on any device
    auto words = [&] { declare("uint", s.dtype == dtype_code::q8_0 || s.dtype == dtype_code::q4_0 ? "" : "uvec2"); };
    if (s.dtype == dtype_code::bf16) {  // no arithmetic type for it anywhere: always words, and a shift
        if (bd.vec4) {  // and 16-byte loads, eight values at a time (vkf_<name>_8)
            block("v8", "uvec4", "_v8");
            t << '\n';
        }
        words();
        return;
    }
    t << native_condition(s.dtype);
    if (s.dtype == dtype_code::f16)
        declare(bd.writes() ? "uint16_t" : "float16_t", bd.writes() ? "" : "f16vec4");
    else
        declare(s.dtype == dtype_code::q8_0 ? "vkf_block_q8_0" : "vkf_block_q4_0", "");
    t << "#else\n";
    words();
    t << "#endif\n";
}

// GGUF's blocks as std430 structs (stride 34 and 18 bytes: the f16 scale aligns them to 2), for the native way.
template <class T, std::size_t Cap>
constexpr void emit_block_structs(T& t, const plan::program_plan<Cap>& p, const plan::shader_record& sh, bool packed) {
    if (packed) return;
    bool q8 = false, q4 = false;
    for (int i = 0; i < sh.binding_count; ++i) {
        q8 = q8 || p.buffers[sh.bindings[i].buffer].dtype == dtype_code::q8_0;
        q4 = q4 || p.buffers[sh.bindings[i].buffer].dtype == dtype_code::q4_0;
    }
    if (!q8 && !q4) return;
    t << "#if defined(VKFUSE_STORAGE_16BIT) && defined(VKFUSE_STORAGE_8BIT)\n";
    if (q8) t << "struct vkf_block_q8_0 { float16_t d; int8_t qs[32]; };   // GGUF q8_0: value = qs[i] * d\n";
    if (q4)
        t << "struct vkf_block_q4_0 { float16_t d; uint8_t qs[16]; };  // GGUF q4_0: byte j holds values j (low "
             "nibble) and j+16 (high), value = (nibble - 8) * d\n";
    t << "#endif\n\n";
}

namespace detail {

// Word k of buffer b: `name[k]`, or, packed, `vkf_arena_u[<offset>u + k]`.
template <class T, std::size_t Cap>
constexpr void word(T& t, const plan::program_plan<Cap>& p, int b, bool packed, std::string_view k, int piece) {
    if (packed) {
        t << "vkf_arena_u[" << p.arena_offset[b] << "u + (" << k << ")]";
    } else {
        buffer_name(t, p, b, piece);
        t << '[' << k << ']';
    }
}

template <class T, std::size_t Cap>
constexpr void function_name(T& t, const plan::program_plan<Cap>& p, int b, std::string_view suffix, int piece) {
    t << "vkf_";
    buffer_name(t, p, b, piece);
    t << suffix;
}

// The word way: elements of 16-bit floats and blocks taken out of uint words (of piece `piece`, where split).
template <class T, std::size_t Cap>
constexpr void emit_word_loaders(T& t, const plan::program_plan<Cap>& p, const plan::binding& bd, bool packed,
                                 int piece) {
    const int b = bd.buffer;
    const dtype_code d = p.buffers[b].dtype;
    auto w = [&](std::string_view k) { word(t, p, b, packed, k, piece); };
    auto name = [&](std::string_view suffix) { function_name(t, p, b, suffix, piece); };
    auto pair = [&] {  // the two words of elements 4q .. 4q+3 of a 16-bit buffer
        if (packed) {
            t << "    const uvec2 w = uvec2(";
            w("2u * q");
            t << ", ";
            w("2u * q + 1u");
            t << ");\n";
        } else {
            t << "    const uvec2 w = ";
            buffer_name(t, p, b, piece);
            t << "_v4[q];\n";
        }
    };
    if (d == dtype_code::f16) {
        t << "float ";
        name("");
        t << "(uint e) { return unpackHalf2x16(";
        w("e >> 1u");
        t << ")[e & 1u]; }\n";
        if (bd.vec4) {
            t << "vec4 ";
            name("_4");
            t << "(uint q) {\n";
            pair();
            t << "    return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));\n}\n";
        }
        if (bd.writes()) {
            t << "void vkf_store_";
            buffer_name(t, p, b, piece);
            t << "(uint e, float v) {  // half a word: two atomics on disjoint bits, which commute\n"
                 "    const uint shift = (e & 1u) * 16u;\n    atomicAnd(";
            w("e >> 1u");
            t << ", ~(0xffffu << shift));\n    atomicOr(";
            w("e >> 1u");
            t << ", vkf_f16_bits(v) << shift);\n}\n";
        }
        return;
    }
    if (d == dtype_code::bf16) {
        t << "float ";
        name("");
        t << "(uint e) {\n    const uint w = ";
        w("e >> 1u");
        t << ";\n    return uintBitsToFloat((e & 1u) != 0u ? w & 0xffff0000u : w << 16);\n}\n";
        if (bd.vec4) {
            t << "vec4 ";
            name("_4");
            t << "(uint q) {\n";
            pair();
            t << "    return vec4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u), "
                 "uintBitsToFloat(w.y << 16),\n                uintBitsToFloat(w.y & 0xffff0000u));\n}\n";
            if (!packed) {  // elements 8o .. 8o+7 from one 16-byte load: the columns hold 8o .. 8o+3 and the rest
                t << "mat2x4 ";
                name("_8");
                t << "(uint o) {\n    const uvec4 w = ";
                buffer_name(t, p, b, piece);
                t << "_v8[o];\n"
                     "    return mat2x4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u), "
                     "uintBitsToFloat(w.y << 16),\n"
                     "                  uintBitsToFloat(w.y & 0xffff0000u), uintBitsToFloat(w.z << 16), "
                     "uintBitsToFloat(w.z & 0xffff0000u),\n"
                     "                  uintBitsToFloat(w.w << 16), uintBitsToFloat(w.w & 0xffff0000u));\n}\n";
            }
        }
        return;
    }
    // blocks: the f16 scale at byte `bytes * block`, the quants after it; a block starts on an even byte
    const std::uint32_t bytes = d == dtype_code::q8_0 ? 34 : 18;
    t << "float ";
    name("_scale");
    t << "(uint block) {\n    const uint o = " << bytes << "u * block;\n    return unpackHalf2x16(";
    w("o >> 2u");
    t << " >> ((o & 2u) * 8u)).x;\n}\n";
    t << "uint ";
    name("_bytes4");
    t << "(uint o) {  // the 4 bytes from byte o (even): one word, or the halves of two\n    const uint lo = ";
    w("o >> 2u");
    t << ";\n    if ((o & 2u) == 0u) return lo;\n    return (lo >> 16) | (";
    w("(o >> 2u) + 1u");
    t << " << 16);\n}\n";
    if (d == dtype_code::q8_0) {
        t << "float ";
        name("");
        t << "(uint e) {\n    const uint o = 34u * (e >> 5u) + 2u + (e & 31u);\n    return float(int(";
        w("o >> 2u");
        t << " << (24u - (o & 3u) * 8u)) >> 24) * ";
        name("_scale");
        t << "(e >> 5u);\n}\n";
        t << "vec4 ";
        name("_4");
        t << "(uint q) {  // 8 quads per block\n    const uint v = ";
        name("_bytes4");
        t << "(34u * (q >> 3u) + 2u + ((q & 7u) << 2));\n"
             "    return vec4(int(v << 24) >> 24, int(v << 16) >> 24, int(v << 8) >> 24, int(v) >> 24) * ";
        name("_scale");
        t << "(q >> 3u);\n}\n";
    } else {
        t << "float ";
        name("");
        t << "(uint e) {  // value p of a block: byte p % 16, the high nibble from p = 16 on\n"
             "    const uint p = e & 31u, o = 18u * (e >> 5u) + 2u + (p & 15u);\n    const uint byte = (";
        w("o >> 2u");
        t << " >> ((o & 3u) * 8u)) & 0xffu;\n    return (float(((p & 16u) != 0u ? byte >> 4 : byte) & 15u) - 8.0) * ";
        name("_scale");
        t << "(e >> 5u);\n}\n";
        t << "vec4 ";
        name("_4");
        t << "(uint q) {  // values 4(q % 8) .. +3 of block q / 8: low nibbles of 4 bytes, or their high ones\n"
             "    const uint p = (q & 7u) << 2;\n    const uint v = (";
        name("_bytes4");
        t << "(18u * (q >> 3u) + 2u + (p & 15u)) >> (p & 16u) / 4u) & 0x0f0f0f0fu;\n"
             "    return (vec4(v & 0xffu, (v >> 8) & 0xffu, (v >> 16) & 0xffu, v >> 24) - 8.0) * ";
        name("_scale");
        t << "(q >> 3u);\n}\n";
    }
}

// The native way: the device converts 16-bit floats and 8-bit integers.
template <class T, std::size_t Cap>
constexpr void emit_native_loaders(T& t, const plan::program_plan<Cap>& p, const plan::binding& bd, int piece) {
    const int b = bd.buffer;
    const dtype_code d = p.buffers[b].dtype;
    auto name = [&](std::string_view suffix) { function_name(t, p, b, suffix, piece); };
    auto buffer = [&] { buffer_name(t, p, b, piece); };
    if (d == dtype_code::f16 && bd.writes()) {  // a state: uint16_t, so that stores write rounded bits
        t << "float ";
        name("");
        t << "(uint e) { return unpackHalf2x16(uint(";
        buffer();
        t << "[e])).x; }\n";
        t << "void vkf_store_";
        buffer();
        t << "(uint e, float v) { ";
        buffer();
        t << "[e] = uint16_t(vkf_f16_bits(v)); }\n";
        return;
    }
    if (d == dtype_code::f16) {
        t << "float ";
        name("");
        t << "(uint e) { return float(";
        buffer();
        t << "[e]); }\n";
        if (bd.vec4) {
            t << "vec4 ";
            name("_4");
            t << "(uint q) { return vec4(";
            buffer();
            t << "_v4[q]); }\n";
        }
        return;
    }
    if (d == dtype_code::q8_0) {
        t << "float ";
        name("");
        t << "(uint e) { return float(int(";
        buffer();
        t << "[e >> 5u].qs[e & 31u])) * float(";
        buffer();
        t << "[e >> 5u].d); }\n";
        t << "vec4 ";
        name("_4");
        t << "(uint q) {\n    const uint block = q >> 3u, k = (q & 7u) << 2;\n    return vec4(int(";
        for (int j = 0; j < 4; ++j) {
            if (j) t << "), int(";
            buffer();
            t << "[block].qs[k" << (j ? " + " : "");
            if (j) t << j << 'u';
            t << ']';
        }
        t << ")) * float(";
        buffer();
        t << "[block].d);\n}\n";
        return;
    }
    // q4_0
    t << "float ";
    name("");
    t << "(uint e) {\n    const uint p = e & 31u;\n    return (float((uint(";
    buffer();
    t << "[e >> 5u].qs[p & 15u]) >> (p & 16u) / 4u) & 15u) - 8.0) * float(";
    buffer();
    t << "[e >> 5u].d);\n}\n";
    t << "vec4 ";
    name("_4");
    t << "(uint q) {\n    const uint block = q >> 3u, p = (q & 7u) << 2, k = p & 15u, shift = (p & 16u) / 4u;\n"
         "    const uvec4 n = (uvec4(";
    for (int j = 0; j < 4; ++j) {
        if (j) t << ", ";
        t << "uint(";
        buffer();
        t << "[block].qs[k" << (j ? " + " : "");
        if (j) t << j << 'u';
        t << "])";
    }
    t << ") >> shift) & 15u;\n    return (vec4(n) - 8.0) * float(";
    buffer();
    t << "[block].d);\n}\n";
}

} // namespace detail

// f32 -> f16 bits, rounded to nearest even, overflow to infinity, NaN to a quiet NaN.
template <class T>
constexpr void emit_f16_rounding(T& t) {
    t << "// f32 to f16 bits, rounded to nearest even (as vkfuse/formats/half.hpp), not by the device's conversion.\n"
         "uint vkf_f16_bits(float v) {\n"
         "    const uint x = floatBitsToUint(v);\n"
         "    const uint sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;\n"
         "    if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN\n"
         "    if (a >= 0x477ff000u) return sign | 0x7c00u;  // 65520 and up round to infinity\n"
         "    if (a >= 0x38800000u) {                       // normal in f16: rebias, round at bit 13\n"
         "        const uint r = a - 0x38000000u;\n"
         "        return sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13);\n"
         "    }\n"
         "    return sign | uint(roundEven(uintBitsToFloat(a) * 16777216.0));  // subnormal: a multiple of 2^-24\n"
         "}\n\n";
}

namespace detail {

// The functions that read a split weight: piece k holds elements from k * piece_elements on, so the element (or
// vec4) index picks the piece and is made relative to it. `suffix` "" reads elements, "_4" vec4s.
template <class T, std::size_t Cap>
constexpr void emit_piece_picker(T& t, const plan::program_plan<Cap>& p, int b, std::string_view suffix) {
    const plan::buffer_slot& s = p.buffers[b];
    const bool v4 = suffix == "_4", v8 = suffix == "_8";
    const std::uint64_t per_piece = v8 ? s.piece_elements / 8 : v4 ? s.piece_elements / 4 : s.piece_elements;
    const std::string_view i = v8 ? "o" : v4 ? "q" : "e";
    t << (v8 ? "mat2x4 " : v4 ? "vec4 " : "float ");
    function_name(t, p, b, suffix, -1);
    t << "(uint " << i << ") {\n";
    for (std::uint32_t k = 0; k < s.pieces; ++k) {
        t << "    ";
        if (k + 1 < s.pieces) t << "if (" << i << " < " << per_piece * (k + 1) << "u) ";
        t << "return ";
        if (plain_storage(p, b)) {
            buffer_name(t, p, b, static_cast<int>(k));
            t << (v4 ? "_v4[" : "[") << i;
        } else {
            function_name(t, p, b, suffix, static_cast<int>(k));
            t << '(' << i;
        }
        if (k > 0) t << " - " << per_piece * k << 'u';
        t << (plain_storage(p, b) ? "];\n" : ");\n");
    }
    t << "}\n";
}

} // namespace detail

// Every loader (and store) function the shader's non-f32 buffers and split weights need.
template <class T, std::size_t Cap>
constexpr void emit_loaders(T& t, const plan::program_plan<Cap>& p, const plan::shader_record& sh, bool packed) {
    const storage_needs n = needs_of(p, sh);
    bool any_split = false;
    for (int i = 0; i < sh.binding_count; ++i) any_split = any_split || in_pieces(p, sh.bindings[i].buffer, packed);
    if (!n.any && !any_split) return;
    if (n.f16_writes) emit_f16_rounding(t);
    for (int i = 0; i < sh.binding_count; ++i) {
        const plan::binding& bd = sh.bindings[i];
        const plan::buffer_slot& s = p.buffers[bd.buffer];
        const bool split = in_pieces(p, bd.buffer, packed);
        if (plain_storage(p, bd.buffer) && !split) continue;
        t << "// ";
        buffer_name(t, p, bd.buffer);
        t << ": " << dtype_name(s.dtype);
        if (split) t << ", in " << s.pieces << " pieces of " << s.piece_elements << " elements";
        t << '\n';
        if (!plain_storage(p, bd.buffer)) {
            const bool native_exists = !packed && s.dtype != dtype_code::bf16;
            for (int piece = split ? 0 : -1; piece < (split ? static_cast<int>(s.pieces) : 0); ++piece) {
                if (native_exists) {
                    t << native_condition(s.dtype);
                    detail::emit_native_loaders(t, p, bd, piece);
                    t << "#else\n";
                }
                detail::emit_word_loaders(t, p, bd, packed, piece);
                if (native_exists) t << "#endif\n";
            }
        }
        if (split) {
            detail::emit_piece_picker(t, p, bd.buffer, "");
            if (bd.vec4 || is_block_format(s.dtype)) detail::emit_piece_picker(t, p, bd.buffer, "_4");
            if (wide_loads(p, bd.buffer, packed) && bd.vec4) detail::emit_piece_picker(t, p, bd.buffer, "_8");
        }
        t << '\n';
    }
}

} // namespace vkfuse::glsl
