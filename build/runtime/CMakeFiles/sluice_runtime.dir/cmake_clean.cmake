file(REMOVE_RECURSE
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/environment.cpp.o"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/environment.cpp.o.d"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/job.cpp.o"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/job.cpp.o.d"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/job_graph.cpp.o"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/job_graph.cpp.o.d"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/sink.cpp.o"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/sink.cpp.o.d"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/source.cpp.o"
  "CMakeFiles/sluice_runtime.dir/sluice/runtime/source.cpp.o.d"
  "libsluice_runtime.a"
  "libsluice_runtime.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/sluice_runtime.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
