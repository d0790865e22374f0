file(REMOVE_RECURSE
  "CMakeFiles/sluice_state_test.dir/__/tests/doctest_main.cpp.o"
  "CMakeFiles/sluice_state_test.dir/__/tests/doctest_main.cpp.o.d"
  "CMakeFiles/sluice_state_test.dir/sluice/state/key_group.test.cpp.o"
  "CMakeFiles/sluice_state_test.dir/sluice/state/key_group.test.cpp.o.d"
  "sluice_state_test"
  "sluice_state_test.pdb"
  "sluice_state_test_tests-b858cb2.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/sluice_state_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
