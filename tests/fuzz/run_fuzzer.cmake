# One bounded fuzzing run for ctest: cmake -DFUZZER=... -DSCRATCH=... -DARTIFACTS=...
# "-DARGS=..." "-DCORPORA=..." -P run_fuzzer.cmake
#
# libFuzzer adds what it finds to its first corpus directory. Emptying that scratch directory
# first makes every run start from the committed inputs alone, so with a fixed -runs each run
# does the same amount of work, as CI needs; the committed corpus is never written to. (The
# path is not bit-for-bit the same: comparison tracing also sees pointer values, which vary
# with address-space randomisation.)
file(REMOVE_RECURSE "${SCRATCH}")
file(MAKE_DIRECTORY "${SCRATCH}" "${ARTIFACTS}")
execute_process(COMMAND "${FUZZER}" ${ARGS} "${SCRATCH}" ${CORPORA} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} found a failing input (exit ${result}); it was saved in "
                      "${ARTIFACTS}. docs/fuzzing.md says how to reproduce, minimise and keep it.")
endif()
