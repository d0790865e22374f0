# sluice_add_job(<name> <sources...>)
# Declares a job library: a MODULE library named <name>.so (no "lib" prefix,
# as `sluice run <name>.so` takes it) compiled against sluice::job_api, the
# headers of sluice/job.hpp. It links no sluice code: the `sluice` process
# that loads it provides the runtime, so both must come from one sluice
# build. Part of sluice's CMake package (find_package(sluice)) and of the
# source tree alike.
function(sluice_add_job name)
  if(NOT ARGN)
    message(FATAL_ERROR "sluice_add_job(${name}): no source files given")
  endif()
  add_library(${name} MODULE ${ARGN})
  target_link_libraries(${name} PRIVATE sluice::job_api)
  set_target_properties(${name} PROPERTIES PREFIX "")
endfunction()
