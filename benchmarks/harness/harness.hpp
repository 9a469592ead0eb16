// benchmarks/harness/harness.hpp — what every benchmark in benchmarks/ shares, in one include.
//
// A benchmark declares its flags on a command_line, parses, opens its vkfuse context, makes a report (which takes
// the metadata), measures, summarizes samples with summarize(), fills report.json() and report.tsv(), and calls
// report.write(). Keeping this out of the benchmarks keeps their flags, their result files and their metadata alike,
// so a result from one can be read, plotted and reproduced the same way as a result from another.
//
//     args.hpp      --runs, --json, --commit and --help through CLI11; the benchmark adds its own flags
//     copy.hpp      the copy kernel whose bandwidth is the roof of memory-bound kernels
//     metadata.hpp  device, driver, commit, date, host, load average, command line
//     output.hpp    the JSON (nlohmann-json) and the TSV next to it
//     stats.hpp     min / median / max of samples
#pragma once

#include "args.hpp"
#include "copy.hpp"
#include "metadata.hpp"
#include "output.hpp"
#include "stats.hpp"
