# Cross-compiling for 64-bit ARM Linux with Debian's gcc-aarch64-linux-gnu;
# binaries run under qemu-user (scripts/ci-aarch64.sh):
#   cmake -S . -B build/aarch64 \
#     -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-toolchain.cmake -DSL_BUILD_APPS=OFF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(SL_CROSS_TRIPLE aarch64-linux-gnu)
set(SL_CROSS_SYSROOT /usr/${SL_CROSS_TRIPLE})

set(CMAKE_C_COMPILER ${SL_CROSS_TRIPLE}-gcc)
set(CMAKE_AR ${SL_CROSS_TRIPLE}-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${SL_CROSS_TRIPLE}-ranlib CACHE FILEPATH "")
set(CMAKE_STRIP ${SL_CROSS_TRIPLE}-strip CACHE FILEPATH "")
set(CMAKE_NM ${SL_CROSS_TRIPLE}-nm CACHE FILEPATH "")

# Libraries and headers of the target only; programs of the host.
set(CMAKE_FIND_ROOT_PATH ${SL_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# How CMake (and the fuzz replay test) runs a target binary on the host.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${SL_CROSS_SYSROOT})
