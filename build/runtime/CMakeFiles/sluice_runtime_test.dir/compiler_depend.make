# Empty compiler generated dependencies file for sluice_runtime_test.
# This may be replaced when dependencies are built.
