//! Antiphon nodes.
