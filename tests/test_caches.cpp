// Tests of the disk caches (vkfuse/vulkan/cache.hpp): SPIR-V files and the pipeline cache, cold and warm, and every
// way a cache file can be wrong. Each test makes its own contexts, validated, with their own temporary cache
// directory, and ends by checking that the validation layer said nothing.
#include "vkfuse/vulkan.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>  // mkdtemp, setenv, unsetenv

namespace vkr = vkfuse::vulkan;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------------------------------

// An empty directory for one test, removed with everything in it afterwards.
class temporary_directory {
public:
    temporary_directory() {
        std::string pattern = (fs::temp_directory_path() / "vkfuse-cache-test-XXXXXX").string();
        REQUIRE(mkdtemp(pattern.data()) != nullptr);
        path_ = pattern;
    }
    ~temporary_directory() {
        std::error_code ignored;
        fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ignored);
        fs::remove_all(path_, ignored);
    }
    temporary_directory(const temporary_directory&) = delete;
    temporary_directory& operator=(const temporary_directory&) = delete;
    const fs::path& path() const noexcept { return path_; }

private:
    fs::path path_;
};

// Sets or unsets an environment variable for one scope, restoring the previous value afterwards.
class scoped_environment {
public:
    scoped_environment(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) previous_ = old;
        set(value);
    }
    ~scoped_environment() { set(previous_ ? previous_->c_str() : nullptr); }
    scoped_environment(const scoped_environment&) = delete;
    scoped_environment& operator=(const scoped_environment&) = delete;

private:
    void set(const char* value) {
        if (value)
            setenv(name_.c_str(), value, 1);
        else
            unsetenv(name_.c_str());
    }
    std::string name_;
    std::optional<std::string> previous_;
};

vkr::context_options cached_in(const fs::path& directory) {
    vkr::context_options options;
    options.validation = true;
    options.cache_directory = directory.string();
    return options;
}

void check_no_validation_messages(vkr::context& ctx) {
    const std::vector<std::string> messages = ctx.take_validation_messages();
    for (const std::string& message : messages) MESSAGE(message);
    CHECK(messages.empty());
}

std::vector<fs::path> files_in(const fs::path& directory) {
    std::vector<fs::path> files;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(directory, error)) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    return files;
}

std::vector<std::byte> read_bytes(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> bytes(chars.size());
    std::transform(chars.begin(), chars.end(), bytes.begin(), [](char c) { return static_cast<std::byte>(c); });
    return bytes;
}

void write_bytes(const fs::path& path, std::span<const std::byte> bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

// ---------------------------------------------------------------------------------------------------------------------
// A kernel to cache: y[i] = a[i] * FACTOR + i, FACTOR from the preamble, so that two preambles make two shaders.
// ---------------------------------------------------------------------------------------------------------------------

constexpr const char* affine_glsl = R"(#version 450
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint LANES = 1u;
layout(set = 0, binding = 0) readonly buffer A { float a[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };
#ifndef FACTOR
#define FACTOR 2.0
#endif
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < uint(y.length())) y[i] = a[i] * FACTOR + float(i);
}
)";

constexpr std::uint32_t workgroup = 64;
constexpr std::size_t elements = 1000;

vkr::kernel make_affine(vkr::context& ctx, std::string_view preamble = {}) {
    vkr::kernel_spec spec;
    spec.label = "test/affine";
    spec.glsl = affine_glsl;
    spec.preamble = preamble;
    spec.binding_count = 2;
    spec.workgroup_size = workgroup;
    return vkr::kernel(ctx, spec);
}

// Builds the kernel in `ctx`, runs it once, returns y.
std::vector<float> run_affine(vkr::context& ctx, std::string_view preamble = {}) {
    const vkr::kernel k = make_affine(ctx, preamble);
    std::vector<float> a(elements);
    std::mt19937 generator(7);
    std::uniform_real_distribution<float> distribution(-1.0f, 1.0f);
    for (float& v : a) v = distribution(generator);
    vkr::buffer in(ctx, elements * sizeof(float)), out(ctx, elements * sizeof(float));
    in.upload(a);
    out.fill(0);
    const std::uint32_t groups = static_cast<std::uint32_t>((elements + workgroup - 1) / workgroup);
    vkr::sequence(ctx, {{&k, {&in, &out}, {groups, 1, 1}, {}}}).run();
    std::vector<float> y = out.download<float>();
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < elements; ++i) wrong += y[i] != doctest::Approx(a[i] * 2.0f + float(i)).epsilon(1e-6);
    CHECK(wrong == 0);
    return y;
}

// The one SPIR-V file a context that compiled one shader wrote into `root`.
fs::path only_spirv_file(const fs::path& root) {
    const std::vector<fs::path> files = files_in(root / "spirv");
    REQUIRE(files.size() == 1);
    CHECK(files[0].extension() == ".spv");
    return files[0];
}

fs::path only_pipeline_file(const fs::path& root) {
    const std::vector<fs::path> files = files_in(root / "pipelines");
    REQUIRE(files.size() == 1);
    CHECK(files[0].extension() == ".bin");
    return files[0];
}

} // namespace

TEST_SUITE("caches") {

// ---------------------------------------------------------------------------------------------------------------------
// Cold and warm
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("caches: a second context starts warm from the first one's files") {
    temporary_directory dir;
    const fs::path root = dir.path() / "cache";  // missing: the context creates it
    std::vector<float> cold_result, warm_result;
    std::vector<std::uint32_t> cold_words;
    {
        vkr::context ctx(cached_in(root));
        cold_result = run_affine(ctx);
        const auto words = ctx.spirv(affine_glsl);
        cold_words.assign(words.begin(), words.end());
        const vkr::cache_statistics s = ctx.cache_stats();
        MESSAGE("cache directory: " << s.directory);
        CHECK(s.directory == fs::absolute(root).string());
        CHECK(s.disabled_because.empty());
        CHECK(s.spirv_compiled == 1);
        CHECK(s.spirv_from_disk == 0);
        CHECK(s.spirv_from_memory == 1);  // the second request above
        CHECK(s.spirv_files_written == 1);
        CHECK(s.spirv_files_rejected == 0);
        CHECK(s.pipeline_cache_bytes_loaded == 0);
        CHECK_FALSE(s.pipeline_cache_file_rejected);
        CHECK(s.pipelines_created == 1);
        CHECK(s.write_failures == 0);
        CHECK(s.last_problem.empty());
        CHECK(ctx.vk_pipeline_cache() != VK_NULL_HANDLE);
        check_no_validation_messages(ctx);
    }  // saves the pipeline cache: a pipeline was added
    CHECK((fs::status(root).permissions() & fs::perms::all) == fs::perms::owner_all);
    only_spirv_file(root);
    const fs::path pipeline_file = only_pipeline_file(root);
    {
        vkr::context ctx(cached_in(root));
        warm_result = run_affine(ctx);
        const auto words = ctx.spirv(affine_glsl);
        const vkr::cache_statistics s = ctx.cache_stats();
        CHECK(s.spirv_compiled == 0);
        CHECK(s.spirv_from_disk == 1);
        CHECK(s.spirv_files_written == 0);
        CHECK(s.spirv_files_rejected == 0);
        CHECK(s.pipeline_cache_bytes_loaded >= vkr::detail::pipeline_cache_header_bytes);
        CHECK_FALSE(s.pipeline_cache_file_rejected);
        CHECK(s.last_problem.empty());
        CHECK(std::equal(words.begin(), words.end(), cold_words.begin(), cold_words.end()));
        // Nothing new for the cache (a hit where the driver reports it; lavapipe's data does not change): no rewrite.
        CHECK_FALSE(ctx.save_pipeline_cache());
        check_no_validation_messages(ctx);
    }
    CHECK(warm_result == cold_result);
    CHECK(files_in(root / "spirv").size() == 1);   // no temporary file left behind
    CHECK(files_in(root / "pipelines").size() == 1);
    CHECK(only_pipeline_file(root) == pipeline_file);
}

TEST_CASE("caches: keys separate preambles, and a context with nothing new saves nothing") {
    temporary_directory dir;
    {
        vkr::context ctx(cached_in(dir.path()));
        const auto plain = ctx.spirv(affine_glsl);
        const auto tripled = ctx.spirv(affine_glsl, "#define FACTOR 3.0\n");
        CHECK_FALSE(std::equal(plain.begin(), plain.end(), tripled.begin(), tripled.end()));
        CHECK(ctx.cache_stats().spirv_compiled == 2);
        CHECK(files_in(dir.path() / "spirv").size() == 2);
        CHECK_FALSE(ctx.save_pipeline_cache());  // no pipeline was created
        check_no_validation_messages(ctx);
    }
    CHECK(files_in(dir.path() / "pipelines").empty());
}

TEST_CASE("caches: threads compiling the same and different shaders at once agree, files stay whole") {
    temporary_directory dir;
    vkr::context ctx(cached_in(dir.path()));
    const std::vector<std::string> preambles = {"", "#define FACTOR 3.0\n", "#define FACTOR 4.0\n"};
    std::vector<std::vector<std::uint32_t>> results(12);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < results.size(); ++t)
        threads.emplace_back([&, t] {
            const auto words = ctx.spirv(affine_glsl, preambles[t % preambles.size()]);
            results[t].assign(words.begin(), words.end());
        });
    for (std::thread& thread : threads) thread.join();
    for (std::size_t t = preambles.size(); t < results.size(); ++t) CHECK(results[t] == results[t % preambles.size()]);
    const vkr::cache_statistics s = ctx.cache_stats();
    CHECK(s.spirv_compiled + s.spirv_from_memory + s.spirv_from_disk == results.size());
    CHECK(s.spirv_compiled >= preambles.size());
    CHECK(s.write_failures == 0);
    CHECK(s.spirv_files_rejected == 0);
    CHECK(files_in(dir.path() / "spirv").size() == preambles.size());  // every temporary file renamed away

    vkr::context warm(cached_in(dir.path()));
    for (const std::string& preamble : preambles) (void)warm.spirv(affine_glsl, preamble);
    CHECK(warm.cache_stats().spirv_from_disk == preambles.size());
    CHECK(warm.cache_stats().spirv_files_rejected == 0);
    check_no_validation_messages(ctx);
    check_no_validation_messages(warm);
}

// ---------------------------------------------------------------------------------------------------------------------
// SPIR-V files that must not be trusted
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("caches: a damaged or foreign SPIR-V file is ignored and rewritten") {
    temporary_directory dir;
    const fs::path root = dir.path();
    {
        vkr::context ctx(cached_in(root));
        (void)run_affine(ctx);
    }
    const fs::path file = only_spirv_file(root);
    const std::vector<std::byte> good = read_bytes(file);
    REQUIRE(good.size() > 64);

    // A file the format accepts, as another shader would have left it: the same name, another key.
    std::vector<std::byte> other_key;
    {
        temporary_directory other;
        vkr::context ctx(cached_in(other.path()));
        (void)ctx.spirv(affine_glsl, "#define FACTOR 5.0\n");
        other_key = read_bytes(only_spirv_file(other.path()));
    }

    std::vector<std::byte> garbage(good.size());
    std::mt19937 generator(1);
    for (std::byte& b : garbage) b = static_cast<std::byte>(generator());

    std::vector<std::byte> flipped = good;  // one bit in the SPIR-V words: only the checksum notices
    flipped[good.size() - 20] ^= std::byte{0x10};

    std::vector<std::byte> wrong_version = good;
    wrong_version[4] = std::byte{99};

    // Consistent in every field, checksum included, but what it holds is not SPIR-V: only the magic check stops it.
    const std::string key_text = [&] {
        vkr::detail::byte_reader in(good);
        (void)in.u32();
        (void)in.u32();
        (void)in.u64();
        const std::uint64_t size = in.u64();
        const std::span<const std::byte> key = in.raw(size);
        return std::string(reinterpret_cast<const char*>(key.data()), key.size());
    }();
    const std::vector<std::uint32_t> not_spirv = {0xdeadbeefu, 1, 2, 3, 4, 5, 6};
    const std::vector<std::byte> not_spirv_file = vkr::detail::encode_spirv_file(key_text, not_spirv);

    struct damage {
        std::string name;
        std::vector<std::byte> bytes;
    };
    const std::vector<damage> cases = {
        {"empty", {}},
        {"truncated in the header", std::vector<std::byte>(good.begin(), good.begin() + 10)},
        {"truncated in the words", std::vector<std::byte>(good.begin(), good.end() - 30)},
        {"trailing bytes", [&] {
             std::vector<std::byte> longer = good;
             longer.push_back(std::byte{0});
             return longer;
         }()},
        {"garbage", garbage},
        {"a flipped bit", flipped},
        {"another format version", wrong_version},
        {"another shader's key", other_key},
        {"not SPIR-V", not_spirv_file},
    };
    for (const damage& d : cases) {
        CAPTURE(d.name);
        write_bytes(file, d.bytes);
        vkr::context ctx(cached_in(root));
        (void)run_affine(ctx);  // checks the results
        const vkr::cache_statistics s = ctx.cache_stats();
        MESSAGE(d.name << ": " << s.last_problem);
        CHECK(s.spirv_files_rejected == 1);
        CHECK(s.spirv_from_disk == 0);
        CHECK(s.spirv_compiled == 1);
        CHECK(s.spirv_files_written == 1);
        CHECK(s.last_problem.find(file.filename().string()) != std::string::npos);
        CHECK(read_bytes(file) == good);  // rewritten whole
        check_no_validation_messages(ctx);
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Pipeline cache files that must not be trusted
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("caches: a damaged or foreign pipeline cache file is ignored and replaced") {
    temporary_directory dir;
    const fs::path root = dir.path();
    {
        vkr::context ctx(cached_in(root));
        (void)run_affine(ctx);
    }
    const fs::path file = only_pipeline_file(root);
    const std::vector<std::byte> good = read_bytes(file);
    std::string why;
    vkr::context probe(cached_in(root));
    const vkr::device_info& info = probe.device();
    const auto data = vkr::detail::decode_pipeline_file(good, info.vendor_id, info.device_id,
                                                        info.pipeline_cache_uuid, why);
    REQUIRE_MESSAGE(data.has_value(), why);
    CHECK(probe.cache_stats().pipeline_cache_bytes_loaded == data->size());

    // Envelopes that check out around a Vulkan header that does not: each field of VkPipelineCacheHeaderVersionOne.
    const auto with_header_change = [&](std::size_t offset, std::uint8_t value) {
        std::vector<std::byte> changed = *data;
        changed[offset] = static_cast<std::byte>(value);
        return vkr::detail::encode_pipeline_file(changed);
    };
    std::vector<std::byte> garbage(good.size());
    std::mt19937 generator(2);
    for (std::byte& b : garbage) b = static_cast<std::byte>(generator());
    std::vector<std::byte> flipped = good;
    flipped.back() ^= std::byte{1};

    struct damage {
        std::string name;
        std::vector<std::byte> bytes;
    };
    const std::vector<damage> cases = {
        {"empty", {}},
        {"truncated", std::vector<std::byte>(good.begin(), good.end() - 1)},
        {"garbage", garbage},
        {"a flipped bit", flipped},
        {"header size too small", with_header_change(0, 8)},
        {"header version 2", with_header_change(4, 2)},
        {"another vendor", with_header_change(8, static_cast<std::uint8_t>(info.vendor_id + 1))},
        {"another device", with_header_change(12, static_cast<std::uint8_t>(info.device_id + 1))},
        {"another driver build", with_header_change(16, static_cast<std::uint8_t>(info.pipeline_cache_uuid[0] + 1))},
        {"only the Vulkan data, no envelope", *data},
    };
    for (const damage& d : cases) {
        CAPTURE(d.name);
        write_bytes(file, d.bytes);
        {
            vkr::context ctx(cached_in(root));
            const vkr::cache_statistics s = ctx.cache_stats();
            MESSAGE(d.name << ": " << s.last_problem);
            CHECK(s.pipeline_cache_file_rejected);
            CHECK(s.pipeline_cache_bytes_loaded == 0);
            CHECK(ctx.vk_pipeline_cache() != VK_NULL_HANDLE);
            (void)run_affine(ctx);
            check_no_validation_messages(ctx);
        }  // a pipeline was added to an empty cache: saved
        CHECK(read_bytes(file) == good);
    }
    check_no_validation_messages(probe);
}

// ---------------------------------------------------------------------------------------------------------------------
// Where the cache is, and when there is none
// ---------------------------------------------------------------------------------------------------------------------

TEST_CASE("caches: the directory is the option, else VKFUSE_CACHE_DIR, else XDG_CACHE_HOME, else HOME") {
    temporary_directory dir;
    const std::string base = dir.path().string();
    const auto location = [](std::optional<std::string> option = std::nullopt) {
        return vkr::detail::locate_cache(option);
    };

    SUBCASE("VKFUSE_CACHE_DIR first") {
        scoped_environment env("VKFUSE_CACHE_DIR", (base + "/explicit").c_str());
        scoped_environment xdg("XDG_CACHE_HOME", (base + "/xdg").c_str());
        CHECK(location().directory == fs::path(base + "/explicit"));
    }
    SUBCASE("then XDG_CACHE_HOME/vkfuse") {
        scoped_environment env("VKFUSE_CACHE_DIR", nullptr);
        scoped_environment xdg("XDG_CACHE_HOME", (base + "/xdg").c_str());
        scoped_environment home("HOME", (base + "/home").c_str());
        CHECK(location().directory == fs::path(base + "/xdg") / "vkfuse");
    }
    SUBCASE("a relative XDG_CACHE_HOME is ignored, as the XDG specification says; then HOME/.cache/vkfuse") {
        scoped_environment env("VKFUSE_CACHE_DIR", nullptr);
        scoped_environment xdg("XDG_CACHE_HOME", "relative/cache");
        scoped_environment home("HOME", (base + "/home").c_str());
        CHECK(location().directory == fs::path(base + "/home") / ".cache" / "vkfuse");
    }
    SUBCASE("nothing set: no disk cache") {
        scoped_environment env("VKFUSE_CACHE_DIR", nullptr);
        scoped_environment xdg("XDG_CACHE_HOME", nullptr);
        scoped_environment home("HOME", nullptr);
        CHECK_FALSE(location().directory.has_value());
        CHECK_FALSE(location().disabled_because.empty());
    }
    SUBCASE("the option wins over the environment, either way") {
        scoped_environment env("VKFUSE_CACHE_DIR", "off");
        CHECK(location(base + "/option").directory == fs::path(base + "/option"));
        scoped_environment on("VKFUSE_CACHE_DIR", (base + "/explicit").c_str());
        CHECK_FALSE(location("").directory.has_value());
        CHECK_FALSE(location("off").directory.has_value());
    }
    SUBCASE("through a context: HOME decides when nothing else is set") {
        scoped_environment env("VKFUSE_CACHE_DIR", nullptr);
        scoped_environment xdg("XDG_CACHE_HOME", nullptr);
        scoped_environment home("HOME", base.c_str());
        vkr::context_options options;
        options.validation = true;
        vkr::context ctx(options);
        CHECK(ctx.cache_stats().directory == (fs::path(base) / ".cache" / "vkfuse").string());
        CHECK(fs::is_directory(fs::path(base) / ".cache" / "vkfuse" / "spirv"));
        check_no_validation_messages(ctx);
    }
}

TEST_CASE("caches: VKFUSE_CACHE_DIR empty, 0 or off turns the disk caches off") {
    temporary_directory dir;
    scoped_environment home("HOME", dir.path().c_str());  // where the default would put it
    scoped_environment xdg("XDG_CACHE_HOME", nullptr);
    for (const char* value : {"", "0", "off", "OFF"}) {
        CAPTURE(value);
        scoped_environment env("VKFUSE_CACHE_DIR", value);
        vkr::context_options options;
        options.validation = true;
        vkr::context ctx(options);
        (void)run_affine(ctx);
        const vkr::cache_statistics s = ctx.cache_stats();
        CHECK(s.directory.empty());
        CHECK(s.disabled_because.find("VKFUSE_CACHE_DIR") != std::string::npos);
        CHECK(s.spirv_compiled == 1);
        CHECK(s.spirv_files_written == 0);
        CHECK(ctx.vk_pipeline_cache() == VK_NULL_HANDLE);
        CHECK_FALSE(ctx.save_pipeline_cache());
        check_no_validation_messages(ctx);
    }
    CHECK(files_in(dir.path()).empty());
}

TEST_CASE("caches: a directory that cannot be created or written degrades to no disk cache, without errors") {
    temporary_directory dir;

    SUBCASE("a file where the directory should be") {
        write_bytes(dir.path() / "file", std::vector<std::byte>(3));
        vkr::context ctx(cached_in(dir.path() / "file" / "cache"));
        (void)run_affine(ctx);
        const vkr::cache_statistics s = ctx.cache_stats();
        MESSAGE(s.disabled_because);
        CHECK(s.directory.empty());
        CHECK(s.disabled_because.find("cannot create") != std::string::npos);
        CHECK(s.spirv_compiled == 1);
        CHECK(ctx.vk_pipeline_cache() == VK_NULL_HANDLE);
        check_no_validation_messages(ctx);
    }
    SUBCASE("entries that cannot be replaced (directories in their place): the writes fail, nothing else does") {
        // The names are those a cold context writes; a directory of that name makes every rename onto it fail, even
        // for root, who may write into any directory.
        std::string spirv_name, pipeline_name;
        {
            temporary_directory cold;
            {
                vkr::context ctx(cached_in(cold.path()));
                (void)run_affine(ctx);
            }
            spirv_name = only_spirv_file(cold.path()).filename().string();
            pipeline_name = only_pipeline_file(cold.path()).filename().string();
        }
        fs::create_directories(dir.path() / "spirv" / spirv_name);
        fs::create_directories(dir.path() / "pipelines" / pipeline_name);
        vkr::context ctx(cached_in(dir.path()));
        (void)run_affine(ctx);
        CHECK_FALSE(ctx.save_pipeline_cache());
        const vkr::cache_statistics s = ctx.cache_stats();
        MESSAGE(s.last_problem);
        CHECK(s.spirv_compiled == 1);
        CHECK(s.spirv_files_written == 0);
        CHECK(s.write_failures == 2);
        CHECK_FALSE(s.last_problem.empty());
        CHECK(files_in(dir.path() / "spirv").size() == 1);  // the temporary files were removed
        CHECK(files_in(dir.path() / "pipelines").size() == 1);
        check_no_validation_messages(ctx);
    }
    SUBCASE("a read-only directory (skipped where permissions do not bind, as for root)") {
        fs::create_directories(dir.path() / "spirv");
        fs::create_directories(dir.path() / "pipelines");
        fs::permissions(dir.path() / "spirv", fs::perms::owner_read | fs::perms::owner_exec);
        fs::permissions(dir.path() / "pipelines", fs::perms::owner_read | fs::perms::owner_exec);
        const bool binding = !std::ofstream(dir.path() / "spirv" / "probe").is_open();
        if (!binding) {
            MESSAGE("permissions do not stop this user from writing; the read-only case is not tested here");
        } else {
            vkr::context ctx(cached_in(dir.path()));
            (void)run_affine(ctx);
            CHECK_FALSE(ctx.save_pipeline_cache());
            const vkr::cache_statistics s = ctx.cache_stats();
            CHECK(s.spirv_compiled == 1);
            CHECK(s.write_failures == 2);
            check_no_validation_messages(ctx);
        }
        fs::permissions(dir.path() / "spirv", fs::perms::owner_all);
        fs::permissions(dir.path() / "pipelines", fs::perms::owner_all);
    }
}

} // TEST_SUITE
