//! crossline-agent library.
