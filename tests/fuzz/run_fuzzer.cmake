# Runs one libFuzzer target for a ctest test (see CMakeLists.txt):
#   cmake -DFUZZER=bin -DSEEDS=dir -DWORK=dir -DDICT=file -DSECONDS=n -P run_fuzzer.cmake
# The seeds are copied into WORK/corpus, which libFuzzer grows (the repository's corpus
# stays as committed; the grown one is kept for the next run in this build dir). Crash,
# leak and timeout inputs are written to WORK/. Fails when libFuzzer does.
foreach(var FUZZER SEEDS WORK DICT SECONDS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}= is missing")
  endif()
endforeach()

file(MAKE_DIRECTORY ${WORK}/corpus)
file(GLOB seeds ${SEEDS}/*)
file(COPY ${seeds} DESTINATION ${WORK}/corpus)

set(args -rss_limit_mb=2048 -timeout=10 -max_len=8192 -print_final_stats=1
         -artifact_prefix=${WORK}/)
if(EXISTS ${DICT})
  list(APPEND args -dict=${DICT})
endif()
if(SECONDS GREATER 0)
  list(APPEND args -max_total_time=${SECONDS})
else()
  list(APPEND args -runs=0)  # replay the corpus once
endif()

string(JOIN " " shown ${args})
message(STATUS "${FUZZER} ${shown} ${WORK}/corpus")
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/corpus RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/crash-* ${WORK}/leak-* ${WORK}/timeout-* ${WORK}/oom-*)
  message(FATAL_ERROR "${FUZZER} failed (${rc}); inputs: ${found}\n"
                      "reproduce with: ${FUZZER} <input>")
endif()
