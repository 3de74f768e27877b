# Offline stand-in for vcpkg's zlib port: installs nothing, so that CMake's Find module finds the
# system's zlib (Debian: zlib1g-dev).
set(VCPKG_POLICY_EMPTY_PACKAGE enabled)
