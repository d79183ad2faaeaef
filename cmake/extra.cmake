# Targets beyond the library, included last from CMakeLists.txt:
#   fuzz-replay-<name>  every fuzz/fuzz_<name>.c built with -DSL_FUZZ_MAIN, a
#                       plain main() that replays the files it is given; the
#                       suite's fuzz_regressions_replay test runs them over
#                       fuzz/regress/<name>/ and fuzz/corpus/<name>/
#   bench_core, ...     every bench/*.c with a main() (run by bench/run.sh)
# Both are discovered by glob, so a new fuzz target or benchmark needs no
# edit here. The libFuzzer builds themselves are in scripts/fuzz.sh.

# --- Fuzz replay ---------------------------------------------------------
# A fuzz target may exercise any library module, or a pure module of the app
# (no libjpeg, no main). The replay binaries link sluice_static, plus a small
# static library of the src/*.c files that are not (yet) in the library and
# of those app modules; a static archive lends only the objects referenced.
file(GLOB SL_FUZZ_TARGETS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/fuzz/fuzz_*.c)
set(SL_FUZZ_APP_SOURCES apps/sluice-stream/mjpeg_split.c)

if(SL_FUZZ_TARGETS)
  file(GLOB sl_fuzz_src CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/*.c)
  get_target_property(sl_lib_src sluice_obj SOURCES)
  foreach(s ${sl_lib_src})
    get_filename_component(s ${s} ABSOLUTE BASE_DIR ${PROJECT_SOURCE_DIR})
    list(REMOVE_ITEM sl_fuzz_src ${s})
  endforeach()
  # A module left out of the library because an optional dependency is off
  # (OpenSSL, libjpeg) stays out here too.
  foreach(s ${sl_fuzz_src})
    file(STRINGS ${s} sl_opt_dep REGEX "#include <(openssl/|turbojpeg)")
    if(sl_opt_dep)
      list(REMOVE_ITEM sl_fuzz_src ${s})
    endif()
  endforeach()
  foreach(s ${SL_FUZZ_APP_SOURCES})
    if(EXISTS ${PROJECT_SOURCE_DIR}/${s})
      list(APPEND sl_fuzz_src ${PROJECT_SOURCE_DIR}/${s})
    endif()
  endforeach()

  set(sl_fuzz_libs sluice_static)
  if(sl_fuzz_src)
    add_library(sluice_fuzz_extra STATIC ${sl_fuzz_src})
    target_include_directories(sluice_fuzz_extra PUBLIC include src apps/sluice-stream)
    target_compile_options(sluice_fuzz_extra PRIVATE ${SL_WARN})
    target_link_libraries(sluice_fuzz_extra PUBLIC sluice_static)
    set(sl_fuzz_libs sluice_fuzz_extra)
  endif()

  set(SL_FUZZ_REPLAY_NAMES "")
  foreach(f ${SL_FUZZ_TARGETS})
    get_filename_component(n ${f} NAME_WE)
    string(REGEX REPLACE "^fuzz_" "" n ${n})
    add_executable(fuzz-replay-${n} ${f})
    target_compile_definitions(fuzz-replay-${n} PRIVATE SL_FUZZ_MAIN)
    target_include_directories(fuzz-replay-${n} PRIVATE include src apps/sluice-stream)
    # libFuzzer's entry point has no prototype outside the target itself.
    target_compile_options(fuzz-replay-${n} PRIVATE ${SL_WARN} -Wno-missing-prototypes)
    target_link_libraries(fuzz-replay-${n} PRIVATE ${sl_fuzz_libs} Threads::Threads)
    list(APPEND SL_FUZZ_REPLAY_NAMES ${n})
  endforeach()
endif()

if(TARGET sluice-tests)
  set(sl_replay_test ${PROJECT_SOURCE_DIR}/tests/unit/test_fuzz_replay.c)
  get_target_property(sl_test_src sluice-tests SOURCES)
  if(EXISTS ${sl_replay_test} AND NOT sl_replay_test IN_LIST sl_test_src
     AND NOT tests/unit/test_fuzz_replay.c IN_LIST sl_test_src)
    target_sources(sluice-tests PRIVATE ${sl_replay_test})
  endif()
  # The test runs cross-compiled replay binaries through the same emulator
  # CMake would use (cmake/aarch64-toolchain.cmake sets qemu-aarch64).
  string(REPLACE ";" " " sl_emu "${CMAKE_CROSSCOMPILING_EMULATOR}")
  set_property(SOURCE ${sl_replay_test} APPEND PROPERTY COMPILE_DEFINITIONS
    SL_FUZZ_REPLAY_DIR="${CMAKE_CURRENT_BINARY_DIR}"
    SL_FUZZ_REPLAY_EMULATOR="${sl_emu}")
  foreach(n ${SL_FUZZ_REPLAY_NAMES})
    add_dependencies(sluice-tests fuzz-replay-${n})
  endforeach()
endif()

# --- Benchmarks -----------------------------------------------------------
# Every bench/*.c with a main() is one program of that name (bench_core,
# loadgen, ...), built against the library as shipped (sluice_static, the
# public header only). A program that needs more gets its own rule before
# this file is included; a target that already exists is left alone.
# Benchmarks are not pass/fail, so a warning in one does not stop a -Werror
# build of the suite; the clang-poll CI stage still fails on any warning.
set(sl_bench_warn ${SL_WARN})
list(REMOVE_ITEM sl_bench_warn -Werror)
file(GLOB SL_BENCHES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bench/*.c)
foreach(f ${SL_BENCHES})
  get_filename_component(n ${f} NAME_WE)
  file(STRINGS ${f} sl_has_main REGEX "^int main\\(")
  if(TARGET ${n} OR NOT sl_has_main)
    continue()
  endif()
  add_executable(${n} ${f})
  target_compile_options(${n} PRIVATE ${sl_bench_warn})
  target_link_libraries(${n} PRIVATE sluice_static)
endforeach()

# --- Relocatable pkg-config file ----------------------------------------------
# sluice.pc is configured with the configure-time CMAKE_INSTALL_PREFIX, so
# `cmake --install DIR --prefix P` (the README's way) installed a file that
# points at /usr/local whatever P was. This runs after the install(FILES)
# rule for it and writes the prefix actually used (DESTDIR excluded, as
# pkg-config expects).
install(CODE "
  set(sl_pc \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig/sluice.pc\")
  if(EXISTS \"\${sl_pc}\")
    file(READ \"\${sl_pc}\" sl_pc_text)
    string(REGEX REPLACE \"(^|\\n)prefix=[^\\n]*\" \"\\\\1prefix=\${CMAKE_INSTALL_PREFIX}\"
           sl_pc_text \"\${sl_pc_text}\")
    file(WRITE \"\${sl_pc}\" \"\${sl_pc_text}\")
  endif()")
