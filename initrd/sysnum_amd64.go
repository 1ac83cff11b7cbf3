package main

// finit_module(2) on x86-64 (arch/x86/entry/syscalls/syscall_64.tbl); Go 1.19's syscall
// package names it only for some architectures.
const sysFinitModule = 313
