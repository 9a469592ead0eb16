// Linked into the sanitized test programs only: makes dlclose() a no-op, so that every library the Vulkan loader
// opens (the driver, LLVM under it, the validation layer) stays mapped until the process exits.
//
// Why: LeakSanitizer reports at exit, long after vkDestroyInstance has made the loader dlclose the driver and the
// layers. By then the allocation stacks of anything those libraries leaked point into unmapped memory, so LSan can
// neither name the module ("<unknown module>", or the name of whatever was mapped there later) nor match the
// module-name suppressions in lsan.supp. Kept mapped, each frame names its real library, and a leak is either
// suppressed as that library's or shown in full.
//
// The executable is searched before every shared library, so this definition (exported with
// -Wl,--export-dynamic-symbol=dlclose, see CMakeLists.txt) wins over both libc's and the sanitizer runtime's
// interceptor for the loader's calls. vkfuse itself never closes what it opens (vkfuse/vulkan/detail/loader.hpp).
extern "C" int dlclose(void*) {
    return 0;
}
