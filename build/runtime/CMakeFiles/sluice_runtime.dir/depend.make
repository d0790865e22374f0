# Empty dependencies file for sluice_runtime.
# This may be replaced when dependencies are built.
