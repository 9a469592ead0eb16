// vkfuse/program/launch.hpp — how a program is laid out on a device: the user's options and the choices made from
// them and the device's limits (workgroup size, invocations per matvec row, subgroup paths).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "../core/error.hpp"
#include "../plan/records.hpp"
#include "../vulkan/context.hpp"

namespace vkfuse {

using vulkan::context;
using vulkan::context_options;

// persistent: which workgroup does which work item (docs/fusion.md, "The persistent strategy").
enum class persistent_schedule : std::uint8_t {
    automatic,  // assigned on a GPU, taken on a CPU device (where a workgroup runs alone on a thread)
    // Item g is workgroup g % N's, fixed before the run: no counter to contend for, and a workgroup knows its next
    // item early enough to read its weights while the phases before it finish. It needs all N workgroups resident at
    // once; every run checks that first (the door) and takes its items from the counter where they are not.
    assigned,
    // Each workgroup takes the next item from a counter: correct however many workgroups the device runs at once.
    taken,
};

// How a program is laid out on its device. Zeros mean "choose for the device".
struct program_options {
    std::uint32_t workgroup_size = 0;  // a power of two; default 256 (1024 for single_dispatch on a GPU)
    std::uint32_t lanes = 0;           // invocations per matvec row, every kernel; default: see matvec_threads
    bool subgroups = true;             // use subgroup arithmetic where the device has it
    // On a GPU, a matvec kernel gets as many invocations per row (a power of two from the subgroup size up to the
    // workgroup size) as it takes to have this many in flight: few long rows need several subgroups each to keep
    // enough loads in flight, many rows need one. A CPU device keeps one subgroup per row.
    std::uint32_t matvec_threads = 1u << 17;
    // Steps of a matvec row (16-byte loads, usually) each invocation has in flight at once, 1 to
    // plan::max_matvec_unroll: its row loop loads this many steps before it adds any. 0: the most.
    std::uint32_t matvec_unroll = 0;
    // Pack every buffer into one binding when a kernel needs more storage-buffer bindings than the device allows
    // (or than this number, if it is smaller; 0: the device's limit). `pack_buffers` packs regardless.
    std::uint32_t max_bindings = 0;
    bool pack_buffers = false;
    // Read f16 weights and GGUF blocks with the device's 16- and 8-bit storage access where it has it; false reads
    // them as 32-bit words on any device (the two ways give the same values; glsl/storage.hpp).
    bool native_storage = true;
    // persistent: workgroups to launch. Each takes work items until none is left, so any number is correct; the best
    // is what the device keeps resident at once. 0: four per multiprocessor where the driver reports them
    // (device_info::compute_units), one per hardware thread on a CPU device, else 256.
    std::uint32_t persistent_workgroups = 0;
    persistent_schedule schedule = persistent_schedule::automatic;
    // persistent: measure, once when the program is made, how many of the launch's workgroups the device holds at
    // once (a census: one dispatch whose workgroups only pass the door), and launch that many instead where it is
    // fewer. Done on GPUs, and wherever the schedule is assigned; false launches persistent_workgroups as given (an
    // assigned run then finds the door closed whenever they are not all resident, and takes its items from the
    // counter).
    bool persistent_fit = true;
    // persistent: a work item reads its first weights before it waits for the phase before it (into L2, where the
    // phase reads them again). On by default.
    bool prefetch_weights = true;
    // persistent: how many steps of its rows (16-byte loads, usually) each invocation of a matvec item reads before
    // it waits, where prefetch_weights is on. 0: plan::persistent_prefetch_steps.
    std::uint32_t prefetch_steps = 0;
    // persistent: a matvec phase's work item evaluates its input vectors once into shared memory, where the device
    // has room for them (plan::max_staged_floats), instead of every invocation reading them on every step. On by
    // default; off reads them from memory as fused does.
    bool stage_inputs = true;
    // program::profile() says where a run's time went, kernel by kernel: fused and per_op from a timestamp after
    // every dispatch (the queue's timestamps), persistent from its work items noting when each was taken, started
    // and finished by the shader clock (VK_KHR_shader_clock's device clock). Costs a few stores per dispatch or work
    // item; off by default. Not for single_dispatch (one phase after another in one workgroup, nothing to split).
    bool profile = false;
};

// The launch geometry chosen for a device.
struct launch_config {
    std::uint32_t workgroup_size = 256;
    std::uint32_t lanes = 32;  // the smallest invocations-per-row: the subgroup size where subgroups are used
    bool subgroup_arithmetic = false;
    bool subgroup_shuffle = false;     // used only together with subgroup arithmetic
    std::uint32_t matvec_threads = 0;  // 0: every matvec kernel uses `lanes`
    std::uint32_t unroll = 4;          // steps of a row in flight per invocation (VKFUSE_UNROLL)
    bool fixed_lanes = false;          // the user chose `lanes`
    bool storage_16bit = false;        // read 16-bit values natively (VKFUSE_STORAGE_16BIT)
    bool storage_8bit = false;         // and 8-bit ones (VKFUSE_STORAGE_8BIT)
    std::uint32_t persistent_workgroups = 0;  // persistent: the workgroups launched
    bool assigned = false;      // persistent: items assigned to workgroups where all are resident (ASSIGNED)
    bool prefetch = false;      // persistent: items read their first weights before they wait (PREFETCH)
    std::uint32_t prefetch_steps = 0;  // persistent: the steps read before the wait (PREFETCH's value)
    bool stage_inputs = false;  // persistent: matvec inputs in shared memory (VKFUSE_STAGE_INPUTS)
    bool fit = false;           // persistent: the launch is fitted to what the device holds at once (a census)
    // The device ends a shader's loops after a fixed number of trips in all (llvmpipe, 65535): waits are unrolled
    // (VKFUSE_LOOP_BUDGET).
    bool loop_budget = false;
    bool profile = false;  // persistent: work items note their times (VKFUSE_PROFILE)

    // What the plan's lanes rule (plan::choose_lanes) needs to know.
    plan::launch_facts facts() const {
        return {workgroup_size, lanes, matvec_threads, fixed_lanes, persistent_workgroups};
    }

    // The symbols the shaders' #ifdefs test, for glslang's preamble.
    std::string preamble() const {
        std::string text;
        text += "#define VKFUSE_UNROLL " + std::to_string(unroll) + "\n";
        if (subgroup_arithmetic) text += "#define VKFUSE_SUBGROUP_ARITHMETIC 1\n";
        if (subgroup_arithmetic && subgroup_shuffle) text += "#define VKFUSE_SUBGROUP_SHUFFLE 1\n";
        if (storage_16bit) text += "#define VKFUSE_STORAGE_16BIT 1\n";
        if (storage_8bit) text += "#define VKFUSE_STORAGE_8BIT 1\n";
        if (loop_budget) text += "#define VKFUSE_LOOP_BUDGET 1\n";
        if (profile) text += "#define VKFUSE_PROFILE 1\n";
        if (stage_inputs) text += "#define VKFUSE_STAGE_INPUTS 1\n";
        return text;
    }
};

namespace detail {

constexpr bool power_of_two(std::uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

inline std::uint32_t floor_power_of_two(std::uint32_t v) {
    std::uint32_t p = 1;
    while (p * 2 <= v) p *= 2;
    return p;
}

// `single`: the whole program runs in one workgroup, so on a GPU it gets the largest one (up to 1024): every extra
// invocation shortens each phase's loops, while a barrier costs about the same at any size. Not on a CPU device:
// lavapipe runs a workgroup's invocations as coroutines, so there a barrier costs in proportion to the size.
inline launch_config choose_launch(const vulkan::device_info& d, const program_options& o, bool single = false) {
    launch_config c;
    const std::uint32_t max_wg = std::min(d.max_workgroup_invocations, d.max_workgroup_size[0]);
    const std::uint32_t preferred = single && d.type != "CPU" ? 1024 : 256;
    c.workgroup_size =
        o.workgroup_size != 0 ? o.workgroup_size : std::min<std::uint32_t>(preferred, floor_power_of_two(max_wg));
    if (!power_of_two(c.workgroup_size) || c.workgroup_size > max_wg)
        throw usage_error("vkfuse program: workgroup_size " + std::to_string(c.workgroup_size) +
                          " must be a power of two no larger than the device's " + std::to_string(max_wg));
    const bool subgroup_ok = o.subgroups && d.subgroup_arithmetic && power_of_two(d.subgroup_size);
    c.lanes = o.lanes != 0 ? o.lanes : (subgroup_ok ? d.subgroup_size : 32u);
    c.lanes = std::min(c.lanes, c.workgroup_size);
    if (!power_of_two(c.lanes))
        throw usage_error("vkfuse program: lanes " + std::to_string(c.lanes) + " must be a power of two");
    c.subgroup_arithmetic = subgroup_ok;
    c.subgroup_shuffle = subgroup_ok && d.subgroup_shuffle;
    c.fixed_lanes = o.lanes != 0;
    c.unroll = o.matvec_unroll != 0 ? o.matvec_unroll : static_cast<std::uint32_t>(plan::max_matvec_unroll);
    if (c.unroll > static_cast<std::uint32_t>(plan::max_matvec_unroll))
        throw usage_error("vkfuse program: matvec_unroll " + std::to_string(c.unroll) + " must be 1 to " +
                          std::to_string(plan::max_matvec_unroll));
    c.matvec_threads = d.type == "CPU" ? 0 : o.matvec_threads;
    c.storage_16bit = o.native_storage && d.storage_16bit;
    c.storage_8bit = o.native_storage && d.storage_8bit;
    c.persistent_workgroups = o.persistent_workgroups != 0 ? o.persistent_workgroups
                              : d.compute_units == 0      ? 256u
                              : d.type == "CPU"           ? d.compute_units
                                                          : 4 * d.compute_units;
    c.persistent_workgroups = std::min(c.persistent_workgroups, d.max_workgroup_count[0]);
    c.loop_budget = d.driver_name == "llvmpipe" || d.name.find("llvmpipe") != std::string::npos;
    c.profile = o.profile;
    // llvmpipe (a CPU device) runs a workgroup per thread until it ends: the counter keeps every thread busy, and its
    // loop budget is better not spent at the door
    c.assigned = o.schedule == persistent_schedule::assigned ||
                 (o.schedule == persistent_schedule::automatic && d.type != "CPU" && !c.loop_budget);
    c.prefetch = o.prefetch_weights;
    c.prefetch_steps = o.prefetch_steps != 0 ? o.prefetch_steps : plan::persistent_prefetch_steps;
    c.fit = o.persistent_fit && (c.assigned || d.type != "CPU");
    c.stage_inputs = o.stage_inputs;  // and where the device has the shared memory (program: fit_shared_memory)
    return c;
}

} // namespace detail

} // namespace vkfuse
