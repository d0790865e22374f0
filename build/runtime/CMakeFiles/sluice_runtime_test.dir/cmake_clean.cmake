file(REMOVE_RECURSE
  "CMakeFiles/sluice_runtime_test.dir/__/tests/doctest_main.cpp.o"
  "CMakeFiles/sluice_runtime_test.dir/__/tests/doctest_main.cpp.o.d"
  "CMakeFiles/sluice_runtime_test.dir/sluice/runtime/exchange.test.cpp.o"
  "CMakeFiles/sluice_runtime_test.dir/sluice/runtime/exchange.test.cpp.o.d"
  "CMakeFiles/sluice_runtime_test.dir/sluice/runtime/job_graph.test.cpp.o"
  "CMakeFiles/sluice_runtime_test.dir/sluice/runtime/job_graph.test.cpp.o.d"
  "sluice_runtime_test"
  "sluice_runtime_test.pdb"
  "sluice_runtime_test_tests-b858cb2.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/sluice_runtime_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
