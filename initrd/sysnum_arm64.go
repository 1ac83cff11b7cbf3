package main

// finit_module(2) on arm64 (include/uapi/asm-generic/unistd.h).
const sysFinitModule = 273
