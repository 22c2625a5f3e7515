//! Tests of channel checks.
