//! portcullis jwt mechanism (work in progress).
