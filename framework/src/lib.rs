//! Antiphon framework.
