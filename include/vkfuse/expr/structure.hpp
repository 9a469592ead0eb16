// vkfuse/expr/structure.hpp — structural facts of a node type, computed once per type by the compiler: its
// children, a 64-bit structural hash, and the size of its tree.
//
// A stack of layers uses each layer's output several times, so its expression *tree* is exponentially larger than
// its DAG. Everything that walks an expression — lowering it to a graph, checking its names — visits each distinct
// node type once, recognising types it has seen by their structural hash (equal types have equal hashes; the 64-bit
// hash of different types colliding is not guarded against).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "../core/fixed_string.hpp"
#include "node.hpp"

namespace vkfuse::expr {

template <class... T>
struct type_list {};

// The children of a node type, as a type_list (leaves and constants have none).
template <class T>
struct children {
    using type = type_list<>;
};
template <op O, class A, class S>
struct children<unary<O, A, S>> {
    using type = type_list<A>;
};
template <op O, class A, class B, class S>
struct children<binary<O, A, B, S>> {
    using type = type_list<A, B>;
};
template <op O, class A>
struct children<reduce<O, A>> {
    using type = type_list<A>;
};
template <class W, class X>
struct children<product<W, X>> {
    using type = type_list<W, X>;
};
template <fixed_string Name, class A>
struct children<named_value<Name, A>> {
    using type = type_list<A>;
};
template <std::size_t HD, float Theta, std::size_t MaxPos, class X, class Pos, rope_scaling S>
struct children<rotary<HD, Theta, MaxPos, X, Pos, S>> {
    using type = type_list<X, Pos>;
};
template <class S, class X, class Pos>
struct children<cache_write<S, X, Pos>> {
    using type = type_list<S, X, Pos>;
};
template <std::size_t H, std::size_t KV, class Q, class K, class V, class Pos>
struct children<decode_attention<H, KV, Q, K, V, Pos>> {
    using type = type_list<Q, K, V, Pos>;
};
template <class E, class Token>
struct children<row_lookup<E, Token>> {
    using type = type_list<E, Token>;
};

constexpr std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 29);
}

template <std::size_t N>
constexpr std::uint64_t hash_name(const fixed_string<N>& s) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < N; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * 0x100000001b3ull;
    return h;
}

// What distinguishes a node type beyond its children: its kind and its parameters.
template <class T>
struct own_hash;
template <role R, fixed_string Name, class D, class S>
struct own_hash<placeholder<R, Name, D, S>> {
    static constexpr std::uint64_t value =
        mix(mix(mix(mix(hash_name(Name), static_cast<std::uint64_t>(R)), static_cast<std::uint64_t>(D::code)),
                S::rows),
            S::cols * 31 + S::rank);
};
template <float V>
struct own_hash<constant<V>> {
    static constexpr std::uint64_t value = mix(0xc0ffeeull, std::bit_cast<std::uint32_t>(V));
};
template <op O, class A, class S>
struct own_hash<unary<O, A, S>> {
    static constexpr std::uint64_t value = mix(0x1ull, static_cast<std::uint64_t>(O));
};
template <op O, class A, class B, class S>
struct own_hash<binary<O, A, B, S>> {
    static constexpr std::uint64_t value = mix(0x2ull, static_cast<std::uint64_t>(O));
};
template <op O, class A>
struct own_hash<reduce<O, A>> {
    static constexpr std::uint64_t value = mix(0x3ull, static_cast<std::uint64_t>(O));
};
template <class W, class X>
struct own_hash<product<W, X>> {
    static constexpr std::uint64_t value = 0x4ull;
};
template <fixed_string Name, class A>
struct own_hash<named_value<Name, A>> {
    static constexpr std::uint64_t value = mix(0x5ull, hash_name(Name));
};
template <std::size_t HD, float Theta, std::size_t MaxPos, class X, class Pos, rope_scaling S>
struct own_hash<rotary<HD, Theta, MaxPos, X, Pos, S>> {
    static constexpr std::uint64_t value =
        mix(mix(mix(mix(mix(mix(mix(0x6ull, HD), std::bit_cast<std::uint32_t>(Theta)), MaxPos),
                        std::bit_cast<std::uint32_t>(S.factor)),
                    std::bit_cast<std::uint32_t>(S.low_freq_factor)),
                std::bit_cast<std::uint32_t>(S.high_freq_factor)),
            S.original_positions);
};
template <class S, class X, class Pos>
struct own_hash<cache_write<S, X, Pos>> {
    static constexpr std::uint64_t value = 0x7ull;
};
template <std::size_t H, std::size_t KV, class Q, class K, class V, class Pos>
struct own_hash<decode_attention<H, KV, Q, K, V, Pos>> {
    static constexpr std::uint64_t value = mix(mix(0x8ull, H), KV);
};
template <class E, class Token>
struct own_hash<row_lookup<E, Token>> {
    static constexpr std::uint64_t value = 0x9ull;
};

namespace detail {
template <class T, class... C>
constexpr std::uint64_t combine_hashes(type_list<C...>);
} // namespace detail

// The structural hash of a node type: its own hash mixed with its children's, in order.
template <class T>
inline constexpr std::uint64_t structural_hash = detail::combine_hashes<T>(typename children<T>::type{});

// How many nodes the expression has written out as a tree (saturating at max_tree_size): a measure of how large an
// expression is as written, which lowering does not depend on.
inline constexpr std::size_t max_tree_size = 4096;

namespace detail {

template <class T, class... C>
constexpr std::uint64_t combine_hashes(type_list<C...>) {
    std::uint64_t h = own_hash<T>::value;
    ((h = mix(h, structural_hash<C>)), ...);
    return h;
}

template <class T, class... C>
constexpr std::size_t sum_tree_sizes(type_list<C...>);

} // namespace detail

template <class T>
inline constexpr std::size_t tree_size = detail::sum_tree_sizes<T>(typename children<T>::type{});

namespace detail {
template <class T, class... C>
constexpr std::size_t sum_tree_sizes(type_list<C...>) {
    const std::size_t n = (std::size_t{1} + ... + tree_size<C>);
    return n > max_tree_size ? max_tree_size : n;
}
} // namespace detail

} // namespace vkfuse::expr
