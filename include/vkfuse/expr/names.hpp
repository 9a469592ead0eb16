// vkfuse/expr/names.hpp — one name is one placeholder: a check that runs where a program is formed.
//
// `input<"x", 8>` and `weight<"x", 8, 8>` in one program would bind one buffer to two shapes. Nodes are formed one
// at a time and cannot see each other's leaves, so the check runs where a program is formed — `y = e` and
// layer_graph(...) — which is as close to the declarations as C++20 allows. It walks the expression's node types once
// each (the tree of a stack of layers is exponentially larger than its DAG) and, on a clash, names both placeholders
// as template arguments of expr::placeholder_name_clash<A, B>, which the compiler prints with the error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/fixed_string.hpp"
#include "../core/types.hpp"
#include "node.hpp"
#include "structure.hpp"

namespace vkfuse::expr {

namespace detail {

// A placeholder as data: what it is called and what it is.
struct leaf_key {
    char name[32] = {};
    std::uint8_t size = 0;
    role leaf_role = role::input;
    dtype_code dtype = dtype_code::f32;
    std::uint8_t rank = 0;
    std::size_t rows = 0, cols = 0;

    constexpr bool same_name(const leaf_key& o) const {
        if (size != o.size) return false;
        for (std::uint8_t i = 0; i < size; ++i)
            if (name[i] != o.name[i]) return false;
        return true;
    }
    constexpr bool operator==(const leaf_key& o) const {
        return same_name(o) && leaf_role == o.leaf_role && dtype == o.dtype && rank == o.rank && rows == o.rows &&
               cols == o.cols;
    }
};

struct name_clash {
    bool found = false;
    leaf_key first, second;
};

struct leaf_walk {
    std::vector<std::uint64_t> seen;  // structural hashes of the node types already walked
    std::vector<leaf_key> leaves;
    name_clash clash;
};

template <class E>
constexpr void walk(leaf_walk& w);

template <class... C>
constexpr void walk_children(leaf_walk& w, type_list<C...>) {
    (walk<C>(w), ...);
}

template <class E>
constexpr void walk(leaf_walk& w) {
    // Keyed by structural hash, not by address: GCC 12 refuses to compare two objects' addresses in constant
    // evaluation when UBSan's null checks are on (-fno-delete-null-pointer-checks; GCC bug 71962).
    for (const std::uint64_t s : w.seen)
        if (s == structural_hash<E>) return;
    w.seen.push_back(structural_hash<E>);
    if constexpr (is_placeholder_v<E>) {
        leaf_key k;
        for (std::size_t i = 0; i < E::name.size(); ++i) k.name[i] = E::name[i];
        k.size = static_cast<std::uint8_t>(E::name.size());
        k.leaf_role = E::leaf_role;
        k.dtype = E::storage::code;
        k.rank = static_cast<std::uint8_t>(E::shape::rank);
        k.rows = E::shape::rank >= 1 ? E::shape::dims[0] : 0;
        k.cols = E::shape::rank == 2 ? E::shape::dims[1] : 0;
        for (const leaf_key& other : w.leaves)
            if (other.same_name(k) && !(other == k) && !w.clash.found) w.clash = {true, other, k};
        w.leaves.push_back(k);
    } else {
        walk_children(w, typename children<E>::type{});
    }
}

// The first clash among the leaves of expressions E...
template <class... E>
constexpr name_clash find_name_clash() {
    leaf_walk w;
    (walk<E>(w), ...);
    return w.clash;
}

template <dtype_code C>
struct storage_type;
template <>
struct storage_type<dtype_code::f32> { using type = f32; };
template <>
struct storage_type<dtype_code::f16> { using type = f16; };
template <>
struct storage_type<dtype_code::bf16> { using type = bf16; };
template <>
struct storage_type<dtype_code::q8_0> { using type = q8_0; };
template <>
struct storage_type<dtype_code::q4_0> { using type = q4_0; };
template <>
struct storage_type<dtype_code::u32> { using type = u32; };

template <leaf_key K>
using dtype_of = typename storage_type<K.dtype>::type;

template <leaf_key K>
constexpr auto shape_of() {
    if constexpr (K.rank == 0)
        return shape<>{};
    else if constexpr (K.rank == 1)
        return shape<K.rows>{};
    else
        return shape<K.rows, K.cols>{};
}

template <leaf_key K>
constexpr auto name_of() {
    fixed_string<K.size> s;
    for (std::size_t i = 0; i < K.size; ++i) s.chars[i] = K.name[i];
    return s;
}

// The placeholder type a key describes, so the error shows it as the user wrote it.
template <leaf_key K>
using placeholder_of = placeholder<K.leaf_role, name_of<K>(), dtype_of<K>, decltype(shape_of<K>())>;

template <class...>
inline constexpr bool always_false = false;

} // namespace detail

// Instantiated only when two placeholders share a name; its template arguments are the two.
template <class First, class Second>
constexpr void placeholder_name_clash() {
    static_assert(detail::always_false<First, Second>,
                  "vkfuse: one name is used for two different placeholders (another shape, dtype or role); they are "
                  "First and Second of placeholder_name_clash, shown with this error: rename one");
}

// Fails to compile when the leaves of E... give one name to two different placeholders.
template <class... E>
constexpr bool check_placeholder_names() {
    constexpr detail::name_clash clash = detail::find_name_clash<E...>();
    if constexpr (clash.found)
        placeholder_name_clash<detail::placeholder_of<clash.first>, detail::placeholder_of<clash.second>>();
    return !clash.found;
}

namespace detail {

// The expressions a program computes, as a type_list: what each `y = e` stores, each effect, every step's.
template <class... L>
struct concat;
template <>
struct concat<> {
    using type = type_list<>;
};
template <class... A>
struct concat<type_list<A...>> {
    using type = type_list<A...>;
};
template <class... A, class... B, class... Rest>
struct concat<type_list<A...>, type_list<B...>, Rest...> : concat<type_list<A..., B...>, Rest...> {};

template <class P>
struct expressions_of {
    using type = type_list<computed_t<P>>;
};
template <class... A>
struct expressions_of<program<A...>> {
    using type = type_list<computed_t<A>...>;
};
template <fixed_string I, std::size_t N, class P>
struct expressions_of<repeated<I, N, P>> : expressions_of<P> {};
template <std::size_t L, class In, class Out, class B>
struct expressions_of<stack<L, In, Out, B>> : expressions_of<B> {};
template <class... S>
struct expressions_of<steps<S...>> : concat<typename expressions_of<S>::type...> {};

template <class... E>
constexpr bool check_list(type_list<E...>) {
    return check_placeholder_names<E...>();
}


// The placeholders program P reads, each once (the reference evaluator's list of a stack's per-layer buffers).
template <class P>
constexpr std::vector<leaf_key> program_leaves() {
    leaf_walk w;
    [&]<class... E>(type_list<E...>) { (walk<E>(w), ...); }(typename expressions_of<P>::type{});
    std::vector<leaf_key> unique;
    for (const leaf_key& k : w.leaves) {
        bool seen = false;
        for (const leaf_key& u : unique) seen = seen || u.same_name(k);
        if (!seen) unique.push_back(k);
    }
    return unique;
}

} // namespace detail

// Fails to compile when the leaves of any of program P's steps give one name to two different placeholders.
template <class P>
constexpr bool check_program_names() {
    return detail::check_list(typename detail::expressions_of<P>::type{});
}

} // namespace vkfuse::expr
