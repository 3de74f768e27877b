# Offline stand-in for vcpkg's asio port: the system's Asio headers (Debian: libasio-dev) and an
# asio-config.cmake with the target the real port exports, asio::asio.
set(VCPKG_BUILD_TYPE release)
file(INSTALL /usr/include/asio /usr/include/asio.hpp DESTINATION "${CURRENT_PACKAGES_DIR}/include")
file(WRITE "${CURRENT_PACKAGES_DIR}/share/asio/asio-config.cmake" [[
find_package(Threads)
if(NOT TARGET asio::asio)
  add_library(asio::asio INTERFACE IMPORTED)
  get_filename_component(_asio_prefix "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
  set_target_properties(asio::asio PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_asio_prefix}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
]])
file(WRITE "${CURRENT_PACKAGES_DIR}/share/asio/copyright" "Stand-in for tests: Asio is BSL-1.0.\n")
