# Conan's check of the package: test_package.cpp built against it, then run (an echo round trip
# over loopback), linked to duplex::tls when the package has TLS and to duplex::duplex if not.
import os

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, cmake_layout


class DuplexTestConan(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeDeps", "CMakeToolchain"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def build(self):
        cmake = CMake(self)
        tls = bool(self.dependencies["duplex"].options.with_tls)
        cmake.configure(variables={"DUPLEX_TEST_TLS": tls})
        cmake.build()

    def test(self):
        if can_run(self):
            self.run(os.path.join(self.cpp.build.bindir, "test_package"), env="conanrun")
