# duplex is header-only: one release configuration, no libraries.
set(VCPKG_BUILD_TYPE release)

# Where the source comes from:
# - DUPLEX_SOURCE_DIR in the environment names a duplex source tree (vcpkg passes it through
#   only when told: VCPKG_KEEP_ENV_VARS=DUPLEX_SOURCE_DIR);
# - else, used as an overlay from a checkout (--overlay-ports=<checkout>/ports), the checkout
#   this port lives in;
# - else (a registry), the release tarball. Before submitting a release to a registry, set REPO
#   to the project's GitHub repository and SHA512 to the tarball's hash (with SHA512 0, vcpkg
#   downloads it and prints the hash to use).
if(DEFINED ENV{DUPLEX_SOURCE_DIR})
    file(TO_CMAKE_PATH "$ENV{DUPLEX_SOURCE_DIR}" SOURCE_PATH)
elseif(EXISTS "${CURRENT_PORT_DIR}/../../include/duplex/duplex.hpp")
    get_filename_component(SOURCE_PATH "${CURRENT_PORT_DIR}/../.." ABSOLUTE)
else()
    vcpkg_from_github(
        OUT_SOURCE_PATH SOURCE_PATH
        REPO OWNER/duplex
        REF "v${VERSION}"
        SHA512 0
        HEAD_REF main
    )
endif()
message(STATUS "duplex source: ${SOURCE_PATH}")

vcpkg_check_features(OUT_FEATURE_OPTIONS FEATURE_OPTIONS
    FEATURES
        tls     DUPLEX_ENABLE_TLS
        deflate DUPLEX_ENABLE_DEFLATE
)
# A feature whose component cannot be built fails the configuration with the reason, rather
# than installing a package without it (tls without OpenSSL, deflate without zlib).
set(required_components "")
foreach(feature IN ITEMS tls deflate)
    if(feature IN_LIST FEATURES)
        list(APPEND required_components "${feature}")
    endif()
endforeach()
list(JOIN required_components "," required_components)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        ${FEATURE_OPTIONS}
        "-DDUPLEX_REQUIRE_COMPONENTS=${required_components}"
        -DDUPLEX_BUILD_TESTS=OFF
        -DDUPLEX_BUILD_EXAMPLES=OFF
        -DDUPLEX_BUILD_BENCHMARKS=OFF
        -DDUPLEX_BUILD_FUZZ=OFF
        -DDUPLEX_INSTALL_CMAKEDIR=share/duplex
    MAYBE_UNUSED_VARIABLES
        DUPLEX_ENABLE_DEFLATE
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup()

# The license is installed as copyright below; nothing else goes to lib/ or debug/.
file(REMOVE_RECURSE
    "${CURRENT_PACKAGES_DIR}/debug"
    "${CURRENT_PACKAGES_DIR}/lib"
    "${CURRENT_PACKAGES_DIR}/share/doc"
)

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
