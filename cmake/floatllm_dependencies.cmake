# The libraries floatllm's headers use, all from Debian packages (see docs/dependencies.md).
# The installed floatllmConfig.cmake finds the same list with find_dependency.
find_package(Threads REQUIRED)
find_package(hwy REQUIRED)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(PCRE2 REQUIRED)
find_package(utf8proc REQUIRED)
set(FLOATLLM_DEPENDENCY_TARGETS Threads::Threads hwy::hwy Eigen3::Eigen
    nlohmann_json::nlohmann_json PCRE2::pcre2-8 utf8proc::utf8proc)
