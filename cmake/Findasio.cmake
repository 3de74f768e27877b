# Findasio.cmake — standalone Asio as the imported target asio::asio.
#
# Asio is header-only and not every install of it comes with a CMake package: vcpkg's and
# Conan's do (asio-config.cmake, target asio::asio), Debian's libasio-dev does not. This module
# takes Asio's own package when there is one, and otherwise looks for asio.hpp.
#
# Sets asio_FOUND, asio_VERSION, asio_INCLUDE_DIR (cache; set it to point at an Asio by hand)
# and defines asio::asio (with Threads::Threads, which Asio's I/O needs on POSIX).

if(TARGET asio::asio)
  set(asio_FOUND TRUE)
  return()
endif()

find_package(asio CONFIG QUIET)
if(asio_FOUND AND TARGET asio::asio)
  return()
endif()

find_path(asio_INCLUDE_DIR asio.hpp DOC "Directory holding standalone Asio's asio.hpp")
mark_as_advanced(asio_INCLUDE_DIR)

if(asio_INCLUDE_DIR AND EXISTS "${asio_INCLUDE_DIR}/asio/version.hpp")
  # ASIO_VERSION is XYYYZZ: major X, minor YYY, sub-minor ZZ.
  file(STRINGS "${asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line
    REGEX "^#define ASIO_VERSION [0-9]+")
  if(_asio_version_line MATCHES "ASIO_VERSION ([0-9]+)")
    math(EXPR _asio_major "${CMAKE_MATCH_1} / 100000")
    math(EXPR _asio_minor "${CMAKE_MATCH_1} / 100 % 1000")
    math(EXPR _asio_patch "${CMAKE_MATCH_1} % 100")
    set(asio_VERSION "${_asio_major}.${_asio_minor}.${_asio_patch}")
  endif()
  unset(_asio_version_line)
  unset(_asio_major)
  unset(_asio_minor)
  unset(_asio_patch)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(asio
  REQUIRED_VARS asio_INCLUDE_DIR
  VERSION_VAR asio_VERSION)

if(asio_FOUND AND NOT TARGET asio::asio)
  find_package(Threads QUIET)
  add_library(asio::asio INTERFACE IMPORTED)
  set_target_properties(asio::asio PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${asio_INCLUDE_DIR}")
  if(TARGET Threads::Threads)
    set_property(TARGET asio::asio PROPERTY INTERFACE_LINK_LIBRARIES Threads::Threads)
  endif()
endif()
