
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/runtime/sluice/runtime/environment.cpp" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/environment.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/environment.cpp.o.d"
  "/work/main/runtime/sluice/runtime/job.cpp" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/job.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/job.cpp.o.d"
  "/work/main/runtime/sluice/runtime/job_graph.cpp" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/job_graph.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/job_graph.cpp.o.d"
  "/work/main/runtime/sluice/runtime/sink.cpp" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/sink.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/sink.cpp.o.d"
  "/work/main/runtime/sluice/runtime/source.cpp" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/source.cpp.o" "gcc" "runtime/CMakeFiles/sluice_runtime.dir/sluice/runtime/source.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
