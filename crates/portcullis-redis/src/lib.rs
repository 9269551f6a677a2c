//! portcullis redis mechanism (work in progress).
