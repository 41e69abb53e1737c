//! Test support for crossline end-to-end tests: finding binaries, starting real processes.
#![forbid(unsafe_code)]
