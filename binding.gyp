{
  "targets": [
    {
      "target_name": "kiln_native",
      "sources": [
        "native/binding.c", "native/cpu.c", "native/pool.c", "native/gemm.c", "native/gemv.c", "native/memory.c", "native/vmath.c",
        "native/elementwise.c", "native/layout.c", "native/nn.c", "native/attention.c",
        "native/decoder.c", "native/decode_step.c", "native/sample.c"
      ],
      "cflags": ["-std=gnu11", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-Wall", "-Wno-unused-function"],
      "cflags!": ["-O2", "-O1", "-Os"],
      "libraries": ["-lpthread", "-lm"],
      "xcode_settings": {
        "OTHER_CFLAGS": ["-std=gnu11", "-O3", "-ffp-contract=fast", "-fno-math-errno"]
      }
    }
  ]
}
