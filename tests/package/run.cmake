# One step of the package tests (tests/package/CMakeLists.txt), run as `cmake -P`:
#   STEP=install   configure duplex alone, install it, move the prefix, check what was installed
#   STEP=consumer  configure NAME's consumer project with ARGS (and EXTRA_PREFIX searched after
#                  the prefix); then, if EXPECT is "run", build and run it; if "found", stop
#                  there; if "refused", require a failed configure whose output matches MESSAGE
#   STEP=clean     remove the scratch directory
cmake_minimum_required(VERSION 3.20)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix "${ROOT}/prefix")

if(STEP STREQUAL "clean")
  file(REMOVE_RECURSE "${ROOT}")

elseif(STEP STREQUAL "install")
  file(REMOVE_RECURSE "${ROOT}")
  file(MAKE_DIRECTORY "${ROOT}")
  # Tests, examples and benchmarks off: only what an install carries is configured.
  run_step("configuring duplex" "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${ROOT}/build"
    -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}" -DDUPLEX_BUILD_TESTS=OFF
    -DDUPLEX_BUILD_EXAMPLES=OFF -DDUPLEX_BUILD_BENCHMARKS=OFF -DDUPLEX_BUILD_FUZZ=OFF
    -DDUPLEX_ENABLE_TLS=${TLS})
  run_step("installing duplex" "${CMAKE_COMMAND}" --install "${ROOT}/build"
    --prefix "${ROOT}/stage")
  # A package that works only where it was installed is not relocatable: use it elsewhere.
  file(RENAME "${ROOT}/stage" "${prefix}")

  foreach(required IN ITEMS include/duplex/duplex.hpp share/cmake/duplex/duplexConfig.cmake
                            share/cmake/duplex/duplexConfigVersion.cmake
                            share/cmake/duplex/duplex-targets.cmake
                            share/cmake/duplex/Findasio.cmake share/doc/duplex/LICENSE)
    if(NOT EXISTS "${prefix}/${required}")
      message(FATAL_ERROR "not installed: ${required}")
    endif()
  endforeach()
  if(TLS AND NOT EXISTS "${prefix}/share/cmake/duplex/duplex-tls-targets.cmake")
    message(FATAL_ERROR "OpenSSL was found but the tls component was not installed")
  endif()
  if(DEFLATE AND NOT EXISTS "${prefix}/share/cmake/duplex/duplex-deflate-targets.cmake")
    message(FATAL_ERROR "zlib was found but the deflate component was not installed")
  endif()
  # Nothing installed may point back at the source, build or staging tree.
  file(GLOB_RECURSE installed LIST_DIRECTORIES false "${prefix}/*")
  foreach(file IN LISTS installed)
    file(READ "${file}" text)
    foreach(tree IN ITEMS "${SOURCE}" "${ROOT}/build" "${ROOT}/stage")
      string(FIND "${text}" "${tree}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "${file} names ${tree}")
      endif()
    endforeach()
  endforeach()
  # What vcpkg's and Conan's Asio packages provide: asio-config.cmake defining asio::asio.
  find_path(asio_header_dir asio.hpp)
  file(WRITE "${ROOT}/asio-package/share/asio/asio-config.cmake"
    "if(NOT TARGET asio::asio)\n"
    "  add_library(asio::asio INTERFACE IMPORTED)\n"
    "  set_target_properties(asio::asio PROPERTIES INTERFACE_INCLUDE_DIRECTORIES \"${asio_header_dir}\")\n"
    "endif()\n")
  list(LENGTH installed count)
  message(STATUS "installed ${count} files into ${prefix}")

elseif(STEP STREQUAL "consumer")
  set(build "${ROOT}/consumer-${NAME}")
  string(REPLACE "|" ";" ARGS "${ARGS}")
  file(REMOVE_RECURSE "${build}")
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE}/tests/package/consumer" -B "${build}"
      -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_PREFIX_PATH=${prefix};${EXTRA_PREFIX}"
      "-DEXPECTED_PREFIX=${prefix}" "-DDUPLEX_SOURCE=${SOURCE}"
      "-DCONSUMER_SOURCE=${SOURCE}/test_package/test_package.cpp"
      -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF ${ARGS}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(EXPECT STREQUAL "refused")
    if(rc EQUAL 0)
      message(FATAL_ERROR "configure succeeded; it should have been refused:\n${out}")
    endif()
    # CMake wraps long messages: compare with the line breaks and indentation taken out.
    string(REGEX REPLACE "\n *" " " flat "${out}")
    if(NOT flat MATCHES "${MESSAGE}")
      message(FATAL_ERROR "refused, but without the expected message '${MESSAGE}':\n${out}")
    endif()
    message(STATUS "refused as expected: ${MESSAGE}")
    return()
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configure failed (${rc}):\n${out}")
  endif()
  if(EXPECT STREQUAL "found")
    message(STATUS "found as expected")
    return()
  endif()
  run_step("building the consumer" "${CMAKE_COMMAND}" --build "${build}")
  if(NOT NAME STREQUAL "subdirectory")
    # The compiler saw the installed headers only.
    file(READ "${build}/compile_commands.json" commands)
    string(FIND "${commands}" "${SOURCE}/include" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "the consumer was compiled against ${SOURCE}/include:\n${commands}")
    endif()
  endif()
  run_step("running the consumer" "${build}/duplex_consumer")
  if(NOT step_output MATCHES "echo: hello from a packaged duplex")
    message(FATAL_ERROR "the consumer ran without an echo:\n${step_output}")
  endif()
  if(NAME STREQUAL "deflate" AND NOT step_output MATCHES "deflate: compressed round trip")
    message(FATAL_ERROR "the deflate consumer did not compress:\n${step_output}")
  endif()
  message(STATUS "${step_output}")

else()
  message(FATAL_ERROR "unknown STEP '${STEP}'")
endif()
