// vkfuse/plan/make_plan.hpp — the plan of a program type under a strategy, computed once at compile time.
//
//     constexpr auto& p = vkfuse::plan::plan_v<decltype(program), vkfuse::strategy::fused>;
//     static_assert(p.kernel_count == 5);
#pragma once

#include <cstddef>
#include <cstdint>

#include "graph.hpp"
#include "kernels.hpp"
#include "materialize.hpp"
#include "records.hpp"

namespace vkfuse::plan {

namespace detail {

template <class...>
inline constexpr bool dependent_false = false;

// A naming mistake found while lowering, reported with the name as a template argument so the compiler shows it.
template <naming_error E, fixed_string Name>
constexpr void report_naming_error() {
    static_assert(E != naming_error::value_has_two_names || dependent_false<decltype(Name)>,
                  "vkfuse: a value has two names (named<> twice, or stored into two outputs); the name is the "
                  "fixed_string argument of report_naming_error, shown with this error");
    static_assert(E != naming_error::two_results_share_a_name || dependent_false<decltype(Name)>,
                  "vkfuse: two outputs or named<> results have the same name; it is the fixed_string argument of "
                  "report_naming_error, shown with this error");
    static_assert(E != naming_error::result_named_like_a_placeholder || dependent_false<decltype(Name)>,
                  "vkfuse: an output or named<> result has the name of an input, weight, state or param; the name "
                  "is the fixed_string argument of report_naming_error, shown with this error");
    static_assert(E != naming_error::output_is_a_placeholder || dependent_false<decltype(Name)>,
                  "vkfuse: an output or named<> value is a placeholder itself, so there is nothing to compute; "
                  "use the placeholder directly (its name is the fixed_string argument of report_naming_error, shown "
                  "with this error)");
    static_assert(E != naming_error::per_layer_leaf_outside_stack || dependent_false<decltype(Name)>,
                  "vkfuse steps(...): a weight or state of a stack<L>'s body is per layer (L copies), so no other step "
                  "may read it; give the other step its own placeholder (the name is the fixed_string argument of "
                  "report_naming_error, shown with this error)");
    static_assert(E != naming_error::step_output_shape_differs || dependent_false<decltype(Name)>,
                  "vkfuse steps(...): a later step reads an earlier step's output with another shape or type, or not "
                  "as an input<>; the name is the fixed_string argument of report_naming_error, shown with this error");
}

template <auto Name>
constexpr auto as_fixed_string() {
    fixed_string<Name.size> s;
    for (std::size_t i = 0; i < Name.size; ++i) s.chars[i] = Name.chars[i];
    return s;
}

void vkfuse_error_repeat_names_an_index_the_program_does_not_use();
void vkfuse_error_repeat_runs_past_a_table_or_cache_its_index_indexes();

} // namespace detail

// The plan of program type `Program` under strategy `How`.
template <class Program, strategy How>
constexpr auto make_plan() {
    constexpr auto lowered = lower_program<Program>();
    if constexpr (lowered.problem.error != naming_error::none)
        detail::report_naming_error<lowered.problem.error, detail::as_fixed_string<lowered.problem.name>()>();
    constexpr std::size_t cap = sizeof(lowered.nodes) / sizeof(node);
    program_plan<cap> p;
    p.g = lowered;
    p.how = How;
    detail::decide_materialization(p);
    detail::lay_out_buffers(p);
    detail::limit_params(p);
    detail::split_large_weights(p, binding_bytes_limit<Program>);
    if constexpr (requires { Program::index_name; }) {  // repeat<>
        for (int i = 0; i < p.param_count; ++i)
            if (p.g[p.params[i]].name == name_buf::from(Program::index_name)) p.loop_param = i;
        if (p.loop_param < 0) detail::vkfuse_error_repeat_names_an_index_the_program_does_not_use();
        p.loop_count = static_cast<std::uint32_t>(Program::count);
        if (p.param_limit[p.loop_param] != 0 && p.loop_count > p.param_limit[p.loop_param])
            detail::vkfuse_error_repeat_runs_past_a_table_or_cache_its_index_indexes();
    }
    for (int i = 0; i < p.param_count; ++i) p.param_word[i] = i == p.loop_param ? -1 : p.param_words++;
    detail::group_roots(p);
    for (int k = 0; k < p.kernel_count; ++k) {
        detail::describe_work(p, p.kernels[k]);
        detail::describe_bindings(p, p.kernels[k]);
        detail::describe_needs(p, p.kernels[k]);
    }
    if (How == strategy::single_dispatch) detail::place_in_shared(p, single_dispatch_shared_floats);
    if (one_shader(How)) detail::describe_single_shader(p);
    detail::lay_out_arena(p);
    return p;
}

// The plan of a program type under a strategy, computed once for everything that reads it.
template <class Program, strategy How>
inline constexpr auto plan_v = make_plan<Program, How>();

} // namespace vkfuse::plan
