# CMake generated Testfile for 
# Source directory: /work/main/state
# Build directory: /work/main/build/state
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/build/state/sluice_state_test_include-b858cb2.cmake")
