
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/doctest_main.cpp" "runtime/CMakeFiles/sluice_runtime_test.dir/__/tests/doctest_main.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime_test.dir/__/tests/doctest_main.cpp.o.d"
  "/work/main/runtime/sluice/runtime/exchange.test.cpp" "runtime/CMakeFiles/sluice_runtime_test.dir/sluice/runtime/exchange.test.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime_test.dir/sluice/runtime/exchange.test.cpp.o.d"
  "/work/main/runtime/sluice/runtime/job_graph.test.cpp" "runtime/CMakeFiles/sluice_runtime_test.dir/sluice/runtime/job_graph.test.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime_test.dir/sluice/runtime/job_graph.test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/build/runtime/CMakeFiles/sluice_runtime.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
