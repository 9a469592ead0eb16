# Prints the compile command of one source file from a compile_commands.json, for scripts/compile_budget.sh.
#
#   cmake -DVKFUSE_COMPILE_COMMANDS=<build>/compile_commands.json -DVKFUSE_SOURCE=<absolute source path>
#         -DVKFUSE_OBJECT=<where the object file should go instead> -DVKFUSE_OUT=<file> -P vkfuse_compile_command.cmake
#
# Writes two lines to VKFUSE_OUT: the directory to run in, and the shell command with every mention of the build's
# own object file (its -o, and the depfile next to it) redirected to VKFUSE_OBJECT, so that timing the compile never
# touches the build tree. Exits non-zero (status 2 when the file has no entry) if it cannot.
cmake_minimum_required(VERSION 3.21)

foreach(var VKFUSE_COMPILE_COMMANDS VKFUSE_SOURCE VKFUSE_OBJECT VKFUSE_OUT)
    if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
        message(FATAL_ERROR "vkfuse_compile_command.cmake: -D${var}=... is required")
    endif()
endforeach()

file(READ "${VKFUSE_COMPILE_COMMANDS}" json)
string(JSON count LENGTH "${json}")
get_filename_component(wanted "${VKFUSE_SOURCE}" REALPATH)

if(count GREATER 0)
    math(EXPR last "${count} - 1")
    foreach(i RANGE ${last})
        string(JSON file GET "${json}" ${i} file)
        string(JSON dir GET "${json}" ${i} directory)
        if(NOT IS_ABSOLUTE "${file}")
            set(file "${dir}/${file}")
        endif()
        get_filename_component(file "${file}" REALPATH)
        if(NOT file STREQUAL wanted)
            continue()
        endif()

        string(JSON command ERROR_VARIABLE no_command GET "${json}" ${i} command)
        if(no_command)
            message(FATAL_ERROR "the entry for ${wanted} has no \"command\" string")
        endif()
        string(JSON output ERROR_VARIABLE no_output GET "${json}" ${i} output)
        if(no_output OR output STREQUAL "")
            # Older CMake: no "output" key; replace whatever follows -o.
            string(REGEX REPLACE "(^| )-o +[^ ]+" "\\1-o ${VKFUSE_OBJECT}" command "${command}")
        else()
            string(REPLACE "${output}" "${VKFUSE_OBJECT}" command "${command}")
        endif()
        file(WRITE "${VKFUSE_OUT}" "${dir}\n${command}\n")
        return()
    endforeach()
endif()

message("no entry for ${wanted} in ${VKFUSE_COMPILE_COMMANDS}")
cmake_language(EXIT 2)
