//! crossline-collector library.
