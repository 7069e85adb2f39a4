// Package wasm runs functions compiled to WebAssembly with wazero's
// compiler engine, behind the runtime package's Runtime, Module and
// Instance contracts.
//
// Two guest conventions are told apart by a module's exports:
//
//   - A reactor exports mote_handle (built with the Mote SDK, for Go:
//     -buildmode=c-shared). It is instantiated once, its _initialize run,
//     and then serves invocation after invocation in microseconds.
//   - A WASI command exports _start (any wasip1 toolchain, no SDK). Each
//     invocation gets a fresh instance: the event on stdin, the result on
//     stdout, stderr to the log, metadata in the environment.
//
// Both may import the WASI preview 1 functions and Mote's "mote" host
// functions, nothing else; docs/host-api.md is the ABI. Guests get no file
// system and no network; clocks and randomness are real.
//
// Each invocation runs on a locked OS thread so its CPU time is read from
// the thread CPU clock (meter.ThreadCPU): time a guest spends blocked in a
// host call is not counted. Deadlines stop runaway guests: Load rewrites
// each module so that its loops check a stop global the runtime sets when
// an invocation's context ends, and yield to Go now and then
// (instrument.go); a module the rewriter cannot decode runs under
// wazero's slower close-on-context-done instead. Each instance's memory is
// a reserved mapping capped at its function's limit (memory.go).
package wasm
