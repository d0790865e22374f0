file(REMOVE_RECURSE
  "libsluice_runtime.a"
)
