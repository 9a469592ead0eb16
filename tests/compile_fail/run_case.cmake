# Driver of one compile-fail test (see CMakeLists.txt next to this file).
#
#   cmake -DVKFUSE_BUILD_DIR=<build tree> -DVKFUSE_TARGET=<target> -DVKFUSE_CONFIG=<config> -DVKFUSE_CASE=<case.cpp>
#         -P run_case.cmake
#
# Builds the case's object target and prints the build output. Outcomes:
#   build fails, output matches the case's `// expect:` regex  -> exit 0 (and ctest's PASS_REGULAR_EXPRESSION matches)
#   build succeeds                                             -> VKFUSE_COMPILE_FAIL_UNEXPECTED_SUCCESS, exit 1
#   build fails, output does not match                         -> VKFUSE_COMPILE_FAIL_WRONG_MESSAGE, exit 1
#   first line is not `// expect: <regex>`                     -> VKFUSE_COMPILE_FAIL_BAD_CASE, exit 1
# The expected regex itself is never echoed, so the driver's own words cannot satisfy the pass regex.
cmake_minimum_required(VERSION 3.21)

foreach(var VKFUSE_BUILD_DIR VKFUSE_TARGET VKFUSE_CASE)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "run_case.cmake: -D${var}=... is required")
    endif()
endforeach()

file(READ "${VKFUSE_CASE}" head LIMIT 4096)
string(REGEX MATCH "^[^\n]*" first_line "${head}")
if(NOT first_line MATCHES "^[ \t]*//[ \t]*expect:[ \t]*(.*[^ \t\r])[ \t\r]*$")
    message(FATAL_ERROR "VKFUSE_COMPILE_FAIL_BAD_CASE: ${VKFUSE_CASE}: the first line must be `// expect: <regex>`.")
endif()
set(expect "${CMAKE_MATCH_1}")

set(config_args "")
if(DEFINED VKFUSE_CONFIG AND NOT "${VKFUSE_CONFIG}" STREQUAL "")
    set(config_args --config "${VKFUSE_CONFIG}")
endif()

message(STATUS "compile-fail case: ${VKFUSE_CASE}")
message(STATUS "building target ${VKFUSE_TARGET} (it must fail to compile)")
execute_process(
    COMMAND "${CMAKE_COMMAND}" --build "${VKFUSE_BUILD_DIR}" --target "${VKFUSE_TARGET}" ${config_args}
    RESULT_VARIABLE build_result
    OUTPUT_VARIABLE build_output
    ERROR_VARIABLE build_output)

# Show the compiler's words: this is what the pass regex is matched against.
message("${build_output}")

if(build_result EQUAL 0)
    message(FATAL_ERROR
        "VKFUSE_COMPILE_FAIL_UNEXPECTED_SUCCESS: ${VKFUSE_CASE} compiled, but a compile-fail case must be rejected "
        "by the compiler.")
endif()

if(NOT build_output MATCHES "${expect}")
    message(FATAL_ERROR
        "VKFUSE_COMPILE_FAIL_WRONG_MESSAGE: ${VKFUSE_CASE} failed to compile, but not with the message its first "
        "line expects (build exit status: ${build_result}); read the diagnostics above.")
endif()

message(STATUS "compile-fail case rejected with the expected message")
