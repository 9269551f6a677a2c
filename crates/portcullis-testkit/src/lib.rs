//! Conformance suites for portcullis stores.

pub mod conformance;
