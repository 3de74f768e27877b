# Offline stand-in for Conan Center's openssl: Debian's libssl-dev, with the same names.
from conan import ConanFile
class OpenSSL(ConanFile):
    name = "openssl"
    version = "3.0.15"
    package_type = "shared-library"
    settings = "os", "arch", "compiler", "build_type"
    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "OpenSSL")
        self.cpp_info.set_property("cmake_find_mode", "both")
        self.cpp_info.components["crypto"].set_property("cmake_target_name", "OpenSSL::Crypto")
        self.cpp_info.components["crypto"].system_libs = ["crypto"]
        self.cpp_info.components["crypto"].includedirs = []
        self.cpp_info.components["crypto"].libdirs = []
        self.cpp_info.components["crypto"].bindirs = []
        self.cpp_info.components["ssl"].set_property("cmake_target_name", "OpenSSL::SSL")
        self.cpp_info.components["ssl"].system_libs = ["ssl"]
        self.cpp_info.components["ssl"].requires = ["crypto"]
        self.cpp_info.components["ssl"].includedirs = []
        self.cpp_info.components["ssl"].libdirs = []
        self.cpp_info.components["ssl"].bindirs = []
