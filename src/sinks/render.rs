//! Message rendering (placeholder until the templates land).
