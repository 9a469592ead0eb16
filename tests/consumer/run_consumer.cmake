# Driver of the consumer tests (see CMakeLists.txt next to this file).
#
#   cmake -DVKFUSE_KIND=find_package|add_subdirectory -DVKFUSE_SOURCE_DIR=<repo> -DVKFUSE_BUILD_DIR=<vkfuse build>
#         -DVKFUSE_CONSUMER_SOURCE=<consumer project> -DVKFUSE_WORK_DIR=<scratch dir>
#         [-DVKFUSE_GENERATOR=<gen>] [-DVKFUSE_CXX_COMPILER=<c++>] [-DVKFUSE_CONFIG=<config>] -P run_consumer.cmake
#
# Starts from an empty scratch dir every time, so a stale install or cache can never make it pass.
cmake_minimum_required(VERSION 3.21)

foreach(var VKFUSE_KIND VKFUSE_SOURCE_DIR VKFUSE_BUILD_DIR VKFUSE_CONSUMER_SOURCE VKFUSE_WORK_DIR)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
    endif()
endforeach()
if(NOT VKFUSE_CONFIG)
    set(VKFUSE_CONFIG Release)
endif()

# Run one command, echo it and its output, stop on failure.
function(vkfuse_step what)
    string(REPLACE ";" " " shown "${ARGN}")
    message(STATUS "[${VKFUSE_KIND}] ${what}: ${shown}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
    message("${output}")
    if(NOT result EQUAL 0)
        message(FATAL_ERROR "[${VKFUSE_KIND}] ${what} failed (exit status ${result})")
    endif()
endfunction()

file(REMOVE_RECURSE "${VKFUSE_WORK_DIR}")
file(MAKE_DIRECTORY "${VKFUSE_WORK_DIR}")

set(configure_args -S "${VKFUSE_CONSUMER_SOURCE}" -B "${VKFUSE_WORK_DIR}/build")
if(VKFUSE_GENERATOR)
    list(APPEND configure_args -G "${VKFUSE_GENERATOR}")
endif()
if(VKFUSE_CXX_COMPILER)
    list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${VKFUSE_CXX_COMPILER}")
endif()
list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${VKFUSE_CONFIG}")

if(VKFUSE_KIND STREQUAL "find_package")
    set(prefix "${VKFUSE_WORK_DIR}/prefix")
    vkfuse_step("install vkfuse"
        "${CMAKE_COMMAND}" --install "${VKFUSE_BUILD_DIR}" --prefix "${prefix}" --config "${VKFUSE_CONFIG}")
    if(NOT EXISTS "${prefix}/include/vkfuse")
        message(FATAL_ERROR "[${VKFUSE_KIND}] the install put no headers in ${prefix}/include/vkfuse")
    endif()
    list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}")
elseif(VKFUSE_KIND STREQUAL "add_subdirectory")
    list(APPEND configure_args "-DVKFUSE_SOURCE_DIR=${VKFUSE_SOURCE_DIR}")
else()
    message(FATAL_ERROR "run_consumer.cmake: unknown VKFUSE_KIND '${VKFUSE_KIND}'")
endif()

vkfuse_step("configure consumer" "${CMAKE_COMMAND}" ${configure_args})
if(VKFUSE_KIND STREQUAL "find_package")
    # Make sure the package came from the prefix we just installed, not from some vkfuse elsewhere on the system.
    file(STRINGS "${VKFUSE_WORK_DIR}/build/CMakeCache.txt" found_dir REGEX "^vkfuse_DIR:")
    string(REGEX REPLACE "^vkfuse_DIR:[A-Z]*=" "" found_dir "${found_dir}")
    string(FIND "${found_dir}" "${prefix}/" at)
    if(NOT at EQUAL 0)
        message(FATAL_ERROR "[${VKFUSE_KIND}] find_package(vkfuse) used '${found_dir}', not the package in ${prefix}")
    endif()
    message(STATUS "[${VKFUSE_KIND}] vkfuse_DIR = ${found_dir}")
endif()

vkfuse_step("build consumer" "${CMAKE_COMMAND}" --build "${VKFUSE_WORK_DIR}/build" --config "${VKFUSE_CONFIG}")

# The consumer projects put their program in <build>/bin whatever the generator.
set(program "${VKFUSE_WORK_DIR}/build/bin/vkfuse_consumer${CMAKE_EXECUTABLE_SUFFIX}")
if(NOT EXISTS "${program}")
    message(FATAL_ERROR "[${VKFUSE_KIND}] the consumer build produced no ${program}")
endif()
vkfuse_step("run consumer" "${program}")

message(STATUS "[${VKFUSE_KIND}] consumer configured, built and ran")
