{
  "targets": [
    {
      "target_name": "kiln_mpi",
      "sources": ["mpi.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "<!@(node ../../scripts/mpi-flags.mjs compile)"],
      "libraries": ["<!@(node ../../scripts/mpi-flags.mjs link)", "-lpthread", "-ldl"],
      "xcode_settings": { "OTHER_CFLAGS": ["<!@(node ../../scripts/mpi-flags.mjs compile)"] }
    }
  ]
}
