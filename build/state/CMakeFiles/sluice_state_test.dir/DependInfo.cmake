
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/tests/doctest_main.cpp" "state/CMakeFiles/sluice_state_test.dir/__/tests/doctest_main.cpp.o" "gcc" "state/CMakeFiles/sluice_state_test.dir/__/tests/doctest_main.cpp.o.d"
  "/work/main/state/sluice/state/key_group.test.cpp" "state/CMakeFiles/sluice_state_test.dir/sluice/state/key_group.test.cpp.o" "gcc" "state/CMakeFiles/sluice_state_test.dir/sluice/state/key_group.test.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
