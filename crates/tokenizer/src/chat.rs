//! Chat templates rendered with minijinja (being written).
