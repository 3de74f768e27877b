# Offline stand-in for Conan Center's asio: packages Debian's /usr/include/asio headers.
import os, shutil
from conan import ConanFile
class Asio(ConanFile):
    name = "asio"
    version = "1.22.1"
    package_type = "header-library"
    license = "BSL-1.0"
    def package_id(self):
        self.info.clear()
    def package(self):
        inc = os.path.join(self.package_folder, "include")
        shutil.copytree("/usr/include/asio", os.path.join(inc, "asio"))
        shutil.copy("/usr/include/asio.hpp", inc)
    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "asio")
        self.cpp_info.set_property("cmake_target_name", "asio::asio")
        self.cpp_info.defines.append("ASIO_STANDALONE")
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.system_libs = ["pthread"]
