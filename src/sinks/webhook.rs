//! Generic webhook sink (placeholder).
