//! portcullis session mechanism (work in progress).
