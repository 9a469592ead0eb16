// tools/quantize_speed.cpp — how fast vkfuse::formats::convert turns a model's weights into each storage format, and
// what each format costs in accuracy. docs/formats.md quotes what it prints.
//
//     quantize_speed [--values N] [--cols C] [--threads T] [--repeat R]
//
// Speed: N random weights (default 2^28, 0.5 GiB as bf16) as a [N / C, C] tensor (C = 2048 by default, Llama 3.2 1B's
// hidden size), stored as bf16 and as f32, converted to f16, bf16, q8_0 and q4_0 with T threads (0: one per core).
// Each conversion runs R times (default 3); the best and the median are printed with the bytes moved per second
// (source read + destination written) and the time the same rate gives for 10^9 weights. Destinations are written
// once before timing, so page faults are not counted.
//
// Accuracy: formats::relative_l2_error on 2^24 values of N(0, 1), and of N(0, 1) with one value in a thousand
// multiplied by 50 (outliers), seeded, so the numbers are the same on every machine.
#include <vkfuse/formats/convert.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <stdexcept>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace vkfuse::formats;

struct options {
    std::size_t values = std::size_t{1} << 28;
    std::size_t cols = 2048;
    unsigned threads = 0;
    int repeat = 3;
};

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) throw std::runtime_error("quantize_speed: " + std::string(flag) + " needs a value");
        const unsigned long long value = std::stoull(argv[++i]);
        if (flag == "--values") o.values = value;
        else if (flag == "--cols") o.cols = value;
        else if (flag == "--threads") o.threads = static_cast<unsigned>(value);
        else if (flag == "--repeat") o.repeat = std::max(1, static_cast<int>(value));
        else throw std::runtime_error("quantize_speed: unknown flag " + std::string(flag) +
                                      " (--values N, --cols C, --threads T, --repeat R)");
    }
    if (o.cols == 0 || o.cols % block_size != 0 || o.values < o.cols)
        throw std::runtime_error("quantize_speed: --cols must be a positive multiple of 32 and at most --values");
    o.values -= o.values % o.cols;
    return o;
}

// Roughly N(0, 1) weights, fast enough for 2^28 of them: the sum of four uniforms (Irwin-Hall), rescaled, from
// splitmix64. Only speed is measured on these; the accuracy figures use std::normal_distribution.
void fill_weights(std::span<float> out, unsigned threads) {
    const unsigned workers = threads != 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
    auto work = [&](unsigned w) {
        std::uint64_t state = 0x9e3779b97f4a7c15ull * (w + 1);
        auto next = [&state] {
            std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            return z ^ (z >> 31);
        };
        const std::size_t first = out.size() * w / workers, last = out.size() * (w + 1) / workers;
        for (std::size_t i = first; i < last; ++i) {
            const std::uint64_t r = next();
            float sum = 0;
            for (int k = 0; k < 4; ++k) sum += static_cast<float>((r >> (16 * k)) & 0xffff) * (1.0f / 65536.0f);
            out[i] = (sum - 2.0f) * 1.7320508f;  // variance of the sum of four uniforms is 1/3
        }
    };
    std::vector<std::jthread> pool;
    for (unsigned w = 1; w < workers; ++w) pool.emplace_back(work, w);
    work(0);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void time_conversions(const options& o, const std::vector<std::byte>& source, weight_format from) {
    const std::size_t rows = o.values / o.cols;
    for (const weight_format to : {weight_format::f16, weight_format::bf16, weight_format::q8_0, weight_format::q4_0}) {
        std::vector<std::byte> destination(tensor_bytes(to, rows, o.cols));
        convert(source, from, destination, to, rows, o.cols, o.threads);  // warm-up: faults the pages in
        std::vector<double> times;
        for (int r = 0; r < o.repeat; ++r) {
            const auto start = std::chrono::steady_clock::now();
            convert(source, from, destination, to, rows, o.cols, o.threads);
            times.push_back(seconds_since(start));
        }
        std::sort(times.begin(), times.end());
        const double best = times.front(), median = times[times.size() / 2];
        const double bytes = static_cast<double>(source.size() + destination.size());
        std::printf("| %-5s -> %-5s | %8.3f | %8.3f | %7.2f | %9.1f | %8.2f |%s\n",
                    std::string(format_name(from)).c_str(), std::string(format_name(to)).c_str(), best, median,
                    bytes / median / 1e9, static_cast<double>(o.values) / median / 1e6, 1e9 * median / o.values,
                    from == to ? " (a copy)" : "");
    }
}

std::vector<float> normal_values(std::size_t n, std::uint32_t seed, double outlier_fraction) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng) * (unit(rng) < outlier_fraction ? 50.0f : 1.0f);
    return v;
}

} // namespace

int main(int argc, char** argv) try {
    const options o = parse(argc, argv);
    const unsigned cores = std::thread::hardware_concurrency();
    std::printf("quantize_speed: %zu weights as [%zu, %zu], threads %u (0: one per core; hardware_concurrency %u), "
                "best/median of %d\n\n",
                o.values, o.values / o.cols, o.cols, o.threads, cores, o.repeat);

    std::vector<float> weights(o.values);
    fill_weights(weights, o.threads);
    const std::size_t rows = o.values / o.cols;
    std::printf("| conversion | best (s) | median (s) | GB/s (read + written) | Mweights/s | s per 1e9 weights |\n");
    std::printf("|---|---|---|---|---|---|\n");
    {
        const std::vector<std::byte> bf16 = encode(weights, weight_format::bf16, rows, o.cols, o.threads);
        time_conversions(o, bf16, weight_format::bf16);
    }
    {
        const std::vector<std::byte> f32(reinterpret_cast<const std::byte*>(weights.data()),
                                         reinterpret_cast<const std::byte*>(weights.data() + weights.size()));
        weights = {};
        time_conversions(o, f32, weight_format::f32);
    }

    std::printf("\nrelative L2 error of decode(encode(x)) against x, 2^24 values:\n\n");
    std::printf("| format | N(0, 1) | N(0, 1), 0.1%% of values x50 |\n|---|---|---|\n");
    const std::vector<float> gaussian = normal_values(std::size_t{1} << 24, 1, 0.0);
    const std::vector<float> outliers = normal_values(std::size_t{1} << 24, 2, 0.001);
    for (const weight_format f : {weight_format::f16, weight_format::bf16, weight_format::q8_0, weight_format::q4_0})
        std::printf("| %-5s | %.3e | %.3e |\n", std::string(format_name(f)).c_str(),
                    relative_l2_error(gaussian, f, o.threads), relative_l2_error(outliers, f, o.threads));
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
}
