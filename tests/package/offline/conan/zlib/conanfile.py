# Offline stand-in for Conan Center's zlib: Debian's zlib1g-dev, with the same names.
from conan import ConanFile
class Zlib(ConanFile):
    name = "zlib"
    version = "1.3.1"
    package_type = "shared-library"
    settings = "os", "arch", "compiler", "build_type"
    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "ZLIB")
        self.cpp_info.set_property("cmake_find_mode", "both")
        self.cpp_info.set_property("cmake_target_name", "ZLIB::ZLIB")
        self.cpp_info.system_libs = ["z"]
        self.cpp_info.includedirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.bindirs = []
