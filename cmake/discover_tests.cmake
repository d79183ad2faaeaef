# Run at build time, after sluice-tests is linked: asks the binary for its
# tests (`sluice-tests -L`: "NAME TIMEOUT_S" per line) and writes one CTest
# test per name to OUT, which the build directory's CTestTestfile.cmake
# includes (TEST_INCLUDE_FILES). So `ctest -N` lists exactly what the binary
# holds, `ctest -R name` runs one test (the runner's -e: the whole name),
# and a new tests/*/test_*.c needs no edit here.
#   -DEXE=path/to/sluice-tests -DOUT=file -DWORKDIR=dir [-DEMU=qemu|-L|sysroot]
# EMU: the cross-compiling emulator, its words joined with "|".
string(REPLACE "|" ";" emu "${EMU}")
execute_process(COMMAND ${emu} ${EXE} -L RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} -L failed (${rc}): ${err}")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(body "# Generated from `sluice-tests -L`; do not edit.\n")
foreach(line IN LISTS lines)
  if(line MATCHES "^([A-Za-z0-9_]+) ([0-9]+)$")
    set(name ${CMAKE_MATCH_1})
    # The runner enforces the timeout itself and reports it; CTest's own is
    # a backstop a little later.
    math(EXPR t "${CMAKE_MATCH_2} + 30")
    set(cmd "")
    foreach(w IN LISTS emu)
      string(APPEND cmd "\"${w}\" ")
    endforeach()
    string(APPEND body "add_test(${name} ${cmd}\"${EXE}\" -e ${name})\n"
      "set_tests_properties(${name} PROPERTIES TIMEOUT ${t} SKIP_RETURN_CODE 77"
      " WORKING_DIRECTORY \"${WORKDIR}\")\n")
  endif()
endforeach()
file(WRITE ${OUT}.tmp "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
file(REMOVE ${OUT}.tmp)
