//! portcullis hybrid mechanism (work in progress).
