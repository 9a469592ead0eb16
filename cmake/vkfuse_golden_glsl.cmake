# Golden GLSL helper, run with `cmake -P` (see shaders_gen/CMakeLists.txt).
#
#   -DVKFUSE_MODE=regenerate -DVKFUSE_GENERATOR_EXE=<exe> -DVKFUSE_GOLDEN_DIR=<shaders_gen source dir>
#       Deletes the *.comp files in the golden dir, then runs `<exe> <golden dir>` to write them afresh.
#   -DVKFUSE_MODE=check -DVKFUSE_GENERATOR_EXE=<exe> -DVKFUSE_GOLDEN_DIR=<dir> -DVKFUSE_OUTPUT_DIR=<scratch dir>
#       Runs `<exe> <scratch dir>` into an emptied scratch dir and compares its *.comp files with the golden ones
#       byte for byte, in both directions. Fails (with a diff) on any missing, extra or different file.
cmake_minimum_required(VERSION 3.21)

foreach(var VKFUSE_MODE VKFUSE_GENERATOR_EXE VKFUSE_GOLDEN_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "vkfuse_golden_glsl.cmake: -D${var}=... is required")
    endif()
endforeach()

function(vkfuse_generate_into dir)
    message(STATUS "running ${VKFUSE_GENERATOR_EXE} ${dir}")
    execute_process(COMMAND "${VKFUSE_GENERATOR_EXE}" "${dir}" RESULT_VARIABLE result)
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "${VKFUSE_GENERATOR_EXE} failed (exit status ${result})")
    endif()
endfunction()

# Sorted file names (no directories) of the *.comp files directly in `dir`.
function(vkfuse_comp_files dir out)
    file(GLOB files RELATIVE "${dir}" "${dir}/*.comp")
    list(SORT files)
    set(${out} "${files}" PARENT_SCOPE)
endfunction()

if(VKFUSE_MODE STREQUAL "regenerate")
    vkfuse_comp_files("${VKFUSE_GOLDEN_DIR}" old)
    foreach(name IN LISTS old)
        file(REMOVE "${VKFUSE_GOLDEN_DIR}/${name}")
    endforeach()
    vkfuse_generate_into("${VKFUSE_GOLDEN_DIR}")
    vkfuse_comp_files("${VKFUSE_GOLDEN_DIR}" new)
    list(LENGTH new count)
    message(STATUS "wrote ${count} golden kernels to ${VKFUSE_GOLDEN_DIR}; review with `git status/diff shaders_gen` and commit")
    return()
endif()

if(NOT VKFUSE_MODE STREQUAL "check")
    message(FATAL_ERROR "vkfuse_golden_glsl.cmake: unknown VKFUSE_MODE '${VKFUSE_MODE}' (regenerate or check)")
endif()
if(NOT DEFINED VKFUSE_OUTPUT_DIR OR "${VKFUSE_OUTPUT_DIR}" STREQUAL "")
    message(FATAL_ERROR "vkfuse_golden_glsl.cmake: -DVKFUSE_OUTPUT_DIR=... is required in check mode")
endif()

file(REMOVE_RECURSE "${VKFUSE_OUTPUT_DIR}")
file(MAKE_DIRECTORY "${VKFUSE_OUTPUT_DIR}")
vkfuse_generate_into("${VKFUSE_OUTPUT_DIR}")

vkfuse_comp_files("${VKFUSE_OUTPUT_DIR}" generated)
vkfuse_comp_files("${VKFUSE_GOLDEN_DIR}" golden)
list(LENGTH generated generated_count)
if(generated_count EQUAL 0)
    message(FATAL_ERROR "the generator wrote no .comp file into ${VKFUSE_OUTPUT_DIR}")
endif()

find_program(VKFUSE_DIFF diff)
set(problems 0)

foreach(name IN LISTS generated)
    if(NOT name IN_LIST golden)
        message("EXTRA:     ${name} is generated but not committed in ${VKFUSE_GOLDEN_DIR}")
        math(EXPR problems "${problems} + 1")
    endif()
endforeach()

foreach(name IN LISTS golden)
    if(NOT name IN_LIST generated)
        message("MISSING:   ${name} is committed but no longer generated")
        math(EXPR problems "${problems} + 1")
        continue()
    endif()
    execute_process(
        COMMAND "${CMAKE_COMMAND}" -E compare_files "${VKFUSE_GOLDEN_DIR}/${name}" "${VKFUSE_OUTPUT_DIR}/${name}"
        RESULT_VARIABLE different)
    if(NOT different EQUAL 0)
        message("DIFFERENT: ${name} (--- committed, +++ generated)")
        math(EXPR problems "${problems} + 1")
        if(VKFUSE_DIFF)
            execute_process(
                COMMAND "${VKFUSE_DIFF}" -u "${VKFUSE_GOLDEN_DIR}/${name}" "${VKFUSE_OUTPUT_DIR}/${name}"
                OUTPUT_VARIABLE diff_text ERROR_VARIABLE diff_text)
            message("${diff_text}")
        endif()
    endif()
endforeach()

if(problems GREATER 0)
    message(FATAL_ERROR
        "golden GLSL: ${problems} file(s) differ from what vkfuse generates now. If the change is intended, run\n"
        "    cmake --build <build dir> --target regenerate_shaders\n"
        "then review `git diff shaders_gen/` and commit the .comp files.")
endif()
message(STATUS "golden GLSL: all ${generated_count} kernels match the committed files byte for byte")
