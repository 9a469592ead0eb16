// vkfuse/program/decode_loop.hpp — greedy decoding with the whole loop on the device.
//
//     vkfuse::decode_loop loop(prog, {.head_steps = 1u << 2});   // prog: a model with index params "pos", "token"
//     vkfuse::generation g = loop.generate(prompt, 16);            // and a u32 output "next" (argmax of the logits)
//     g.tokens;                                                     // the prompt, then 16 new ids
//
// A model program reads the current token and position from its parameter block. After each run, a one-invocation
// control kernel advances the position in that block and writes the next token: during the prompt, the prompt's
// next id; after it, the program's own argmax. So a whole phase — the prompt, or every new token — is one command
// buffer holding the program's dispatches and the control dispatch many times over, recorded once per length and
// submitted once: no host work between tokens. Prefill leaves out the steps that only produce logits (`head_steps`),
// except at the last prompt position, whose argmax is the first new token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../vulkan/buffer.hpp"
#include "../vulkan/kernel.hpp"
#include "../vulkan/sequence.hpp"
#include "program.hpp"

namespace vkfuse {

struct decode_options {
    // Steps of the program (bit i: step i of steps(...)) that only compute the logits and the next token; prefill
    // skips them. 0: run everything at every position.
    std::uint32_t head_steps = 0;
    std::string position = "pos";  // the index param holding the position
    std::string token = "token";   // the index param holding the current token
    std::string next = "next";     // the u32 output holding the argmax
};

// What generate() produced and what it cost.
struct generation {
    std::vector<std::uint32_t> tokens;  // the prompt, then the new ids
    std::size_t prompt_length = 0;
    vulkan::timing prefill{};  // every prompt position but the last (no logits needed)
    vulkan::timing decode{};   // the last prompt position and every new token but the last: one run per new token
    std::size_t prefill_runs = 0, decode_runs = 0;
    std::size_t recordings = 0;  // command buffers recorded by this call (0 when lengths repeat)
};

namespace detail {

// The control kernel: one invocation after each run. It reads the position from the program's parameter block,
// moves it on, takes the id at the new position from the prompt or else the argmax just computed, records it in the
// sequence of ids, and writes it to the block as the token the next run embeds.
inline constexpr std::string_view decode_control_glsl = R"(#version 450
layout(local_size_x_id = 0) in;
layout(set = 0, binding = 0, std430) readonly buffer Next { uint next_token; };
layout(set = 0, binding = 1, std430) buffer Ids { uint prompt_length; uint capacity; uint ids[]; };
layout(set = 0, binding = 2, std430) coherent buffer Params { uint words[]; };  // the program's parameter block
layout(push_constant) uniform Words { uint position_word; uint token_word; };
void main() {
    const uint p = words[position_word] + 1u;
    if (p >= capacity) return;  // the host never asks for more positions than the caches hold
    const uint t = p < prompt_length ? ids[p] : next_token;
    ids[p] = t;
    words[position_word] = p;
    words[token_word] = t;
}
)";

} // namespace detail

template <class Program, strategy How>
class decode_loop {
public:
    decode_loop(program<Program, How>& prog, decode_options options = {})
        : prog_(&prog), options_(std::move(options)),
          capacity_(prog.index_limit(options_.position)),
          ids_(prog.context_of(), (2 + static_cast<std::size_t>(capacity_)) * sizeof(std::uint32_t)) {
        prog.parameter_word(options_.token);  // both indices exist (this throws, naming what the program has)
        position_word_ = prog.parameter_word(options_.position);
        token_word_ = prog.parameter_word(options_.token);
        if (capacity_ == 0)
            throw usage_error("vkfuse decode_loop: index '" + options_.position + "' indexes no cache or table, so "
                              "nothing bounds the positions; a model's position indexes its KV caches.");
        vulkan::kernel_spec spec;
        spec.label = "decode_loop control";
        spec.glsl = detail::decode_control_glsl;
        spec.binding_count = 3;
        spec.push_constant_bytes = 8;
        spec.workgroup_size = 1;
        control_ = vulkan::kernel(prog.context_of(), spec);
    }

    // Positions the caches hold: the prompt and the new tokens together must fit.
    std::size_t capacity() const { return capacity_; }

    // Greedy continuation of `prompt` by `new_tokens` ids, from empty caches.
    generation generate(std::span<const std::uint32_t> prompt, std::size_t new_tokens) {
        check_lengths(prompt, new_tokens);
        start(prompt);
        generation g;
        g.prompt_length = prompt.size();
        const std::size_t before = recordings_;
        // prefill: positions 0 .. P-2 without the head; then one full run per new token (the first at position P-1)
        g.prefill_runs = prompt.size() - 1;
        g.decode_runs = new_tokens;
        if (g.prefill_runs != 0) g.prefill = phase(options_.head_steps, g.prefill_runs).run();
        if (g.decode_runs != 0) g.decode = phase(0, g.decode_runs).run();
        prog_->mark_run();
        g.tokens = read_ids(prompt.size() + new_tokens);
        check_finite(g.tokens, prompt.size());
        g.recordings = recordings_ - before;
        return g;
    }

    // The same, one run at a time, handing the logits of every position to `sink(position, logits)`: a position per
    // submission, so slower; for checking a model against another implementation (`logits` names the output).
    template <class Sink>
    generation generate_with_logits(std::span<const std::uint32_t> prompt, std::size_t new_tokens,
                                    std::string_view logits, Sink sink) {
        check_lengths(prompt, new_tokens);
        start(prompt);
        generation g;
        g.prompt_length = prompt.size();
        vulkan::sequence& one = phase(0, 1);
        const std::size_t runs = prompt.size() - 1 + new_tokens;
        for (std::size_t position = 0; position < runs; ++position) {
            const vulkan::timing t = one.run();
            (position + 1 < prompt.size() ? g.prefill : g.decode).gpu_ns += t.gpu_ns;
            prog_->mark_run();
            sink(position, prog_->download(logits));
        }
        g.prefill_runs = prompt.size() - 1;
        g.decode_runs = new_tokens;
        g.tokens = read_ids(prompt.size() + new_tokens);
        check_finite(g.tokens, prompt.size());
        return g;
    }

private:
    // The argmax of logits holding NaN or +infinity is their length, an id no vocabulary holds (ops/traits.hpp): the
    // first such id ends the generation with an error naming the position whose logits they were.
    void check_finite(const std::vector<std::uint32_t>& tokens, std::size_t prompt_length) const {
        const std::uint32_t vocabulary = prog_->index_limit(options_.token);
        for (std::size_t at = prompt_length; at < tokens.size(); ++at)
            if (vocabulary != 0 && tokens[at] >= vocabulary)
                throw numeric_error("vkfuse decode_loop: the logits at position " + std::to_string(at - 1) +
                                    " are not finite (NaN or infinity), so no token follows it. The model overflows "
                                    "f32 there: check the weights (a checkpoint far outside a trained model's "
                                    "range) and the inputs.");
    }

    void check_lengths(std::span<const std::uint32_t> prompt, std::size_t new_tokens) const {
        if (prompt.empty()) throw usage_error("vkfuse decode_loop: the prompt is empty; give at least one token id.");
        if (new_tokens == 0) throw usage_error("vkfuse decode_loop: asked for 0 new tokens; ask for at least 1.");
        // the last new token is written at position P - 1 + new_tokens
        if (prompt.size() + new_tokens > capacity_)
            throw usage_error("vkfuse decode_loop: a prompt of " + std::to_string(prompt.size()) + " ids and " +
                              std::to_string(new_tokens) + " new ones need " +
                              std::to_string(prompt.size() + new_tokens) + " positions, but the caches hold " +
                              std::to_string(capacity_) + "; build the model with a longer maximum sequence.");
    }

    // Empty caches, the prompt in the id buffer, position 0 and the first token in the parameter block.
    void start(std::span<const std::uint32_t> prompt) {
        prog_->reset_states();
        std::vector<std::uint32_t> header(2 + capacity_, 0u);
        header[0] = static_cast<std::uint32_t>(prompt.size());
        header[1] = static_cast<std::uint32_t>(capacity_);
        for (std::size_t i = 0; i < prompt.size(); ++i) header[2 + i] = prompt[i];
        ids_.upload(header);
        prog_->set_index(options_.position, 0);
        prog_->set_index(options_.token, prompt[0]);
    }

    std::vector<std::uint32_t> read_ids(std::size_t count) const {
        const std::vector<std::uint32_t> all = ids_.template download<std::uint32_t>();
        return std::vector<std::uint32_t>(all.begin() + 2, all.begin() + 2 + static_cast<std::ptrdiff_t>(count));
    }

    // The command buffer of `runs` runs (without the steps in `skip`), each followed by the control kernel.
    vulkan::sequence& phase(std::uint32_t skip, std::size_t runs) {
        const auto key = std::pair{skip, runs};
        if (auto it = phases_.find(key); it != phases_.end()) return *it->second;
        std::vector<vulkan::dispatch> list = prog_->dispatches(skip);
        vulkan::dispatch control;
        control.k = &control_;
        control.buffers = {&prog_->buffer(options_.next), &ids_};
        control.mapped_storage = {&prog_->parameter_block()};
        control.push_constants = vulkan::pack_push_constants(position_word_, token_word_);
        list.push_back(std::move(control));
        auto made = std::make_unique<vulkan::sequence>(prog_->context_of(), std::move(list),
                                                       static_cast<std::uint32_t>(runs));
        ++recordings_;
        return *phases_.emplace(key, std::move(made)).first->second;
    }

    program<Program, How>* prog_;
    decode_options options_;
    std::uint32_t capacity_ = 0;
    vulkan::buffer ids_;  // prompt length, capacity, then the ids at positions 0 .. capacity - 1
    std::uint32_t position_word_ = 0, token_word_ = 0;
    vulkan::kernel control_;
    std::map<std::pair<std::uint32_t, std::size_t>, std::unique_ptr<vulkan::sequence>> phases_;
    std::size_t recordings_ = 0;
};

template <class Program, strategy How>
decode_loop(program<Program, How>&) -> decode_loop<Program, How>;
template <class Program, strategy How>
decode_loop(program<Program, How>&, decode_options) -> decode_loop<Program, How>;

} // namespace vkfuse
