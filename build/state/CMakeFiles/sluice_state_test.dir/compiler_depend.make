# Empty compiler generated dependencies file for sluice_state_test.
# This may be replaced when dependencies are built.
