# Offline stand-in for vcpkg's openssl port: installs nothing, so that CMake's Find module finds the
# system's openssl (Debian: libssl-dev).
set(VCPKG_POLICY_EMPTY_PACKAGE enabled)
